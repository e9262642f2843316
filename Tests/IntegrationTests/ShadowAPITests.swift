import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The operator's view of device shadows: `GET /api/shadows/{device}` and `edge-gateway shadow get`
    /// show the hub's copy after a cloud update and a device report (real brokers, the running daemon).
    @Suite struct ShadowAPITests {
        @Test func theOperatorReadsTheHubsCopyOfAShadow() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port)])
                let admin = AdminClient(port: port)
                let upstream = try #require(bed.upstreamBroker)
                let device = bed.device("sh-1")

                let none = try await admin.get("/api/shadows/sh-1")
                #expect(none.status == 200 && (none.json as? [String: Any])?["version"] as? Int == 0, "\(none.text)")

                try await DeviceClient.publishOnce(
                    topic: "hubs/hub-test/shadow/sh-1/update", payload: Data(#"{"desired": {"led": "on"}}"#.utf8), brokerPort: upstream.port,
                    in: device.directory)
                try await DeviceClient.publishOnce(
                    topic: "device/sh-1/shadow/report", payload: Data(#"{"reported": {"led": "off", "fw": "1.2"}}"#.utf8),
                    brokerPort: bed.deviceBroker.port, in: device.directory)
                let deadline = ContinuousClock.now + .seconds(20)
                var document: [String: Any] = [:]
                while ContinuousClock.now < deadline {
                    document = try await admin.get("/api/shadows/sh-1").json as? [String: Any] ?? [:]
                    if document["version"] as? Int == 2 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                #expect(document["version"] as? Int == 2, "\(document)")
                #expect(document["desired"] as? [String: String] == ["led": "on"])
                #expect(document["reported"] as? [String: String] == ["led": "off", "fw": "1.2"])
                #expect(try await admin.get("/api/shadows/a%2Fb").status == 400)

                let cli = try await GatewayBinary.run(["shadow", "get", "sh-1", "--config", bed.gateway.configFile.path], in: sandbox.directory)
                #expect(cli.succeeded && cli.stdout.contains("version   2") && cli.stdout.contains("\"led\" : \"on\""), "\(cli)")
                let empty = try await GatewayBinary.run(["shadow", "get", "nobody", "--config", bed.gateway.configFile.path], in: sandbox.directory)
                #expect(empty.succeeded && empty.stderr.contains("nobody has no shadow on this hub yet"), "\(empty)")
            }
        }
    }
}
