import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct TLSUpstreamTests {
        @Test func eventsArriveOverTLSWithUsernameAndPassword() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, upstream: .tlsBroker(user: "hub-test", password: "s3cret-pw"))
                let devices = ["tls-1", "tls-2"]
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 10)) })
                try await bed.publishConcurrently(sent)
                try await bed.waitForAcks(count: 20)
                let upstream = try await bed.waitForUpstream(eventIds: Set(sent.values.joined().map(\.eventId)))
                #expect(DeliveryCheck.orderProblems(upstream, sent: sent).isEmpty,
                        "\(DeliveryCheck.orderProblems(upstream, sent: sent))")
                let log = bed.gateway.logText
                #expect(!log.contains("s3cret-pw"), "the password must not be logged")
            }
        }

        @Test func aServerCertificateFromAnotherCAIsRefusedUnlessVerificationIsExplicitlyOff() async throws {
            try await withSandbox { sandbox in
                // The gateway trusts a CA that did not sign the broker's certificate.
                let otherCA = try await TestCertificates.make(in: try sandbox.makeDirectory("other-ca"))
                let bed = try await TestBed.start(
                    in: sandbox, upstream: .tlsBroker(user: "hub-test", password: "pw"),
                    // At debug the retries of a failing connect are logged one by one.
                    overrides: ["upstream.tls.caFile": .string(otherCA.caFile.path), "log.level": "debug"])
                try await bed.device("tls-x").publish(DeviceEvent.series(deviceId: "tls-x", count: 3))
                _ = try await bed.waitForAcks(count: 3)
                // Events go upstream only over a connection that was made; two attempts (the first and a
                // retry) have failed the handshake, and none succeeded.
                try await bed.gateway.waitForLog("edge-gateway.upstream.mqtt: cannot connect to the MQTT broker")
                try await bed.gateway.waitForLog("edge-gateway.upstream.mqtt: MQTT connect failed")
                #expect(!bed.gateway.currentRunLog.contains("edge-gateway.upstream.mqtt: MQTT connected"), "\(bed.diagnostics)")
                #expect(bed.upstreamEvents.isEmpty, "events went to a broker whose certificate does not verify")
                #expect(!bed.gateway.logText.contains("upstream TLS does not verify the server"))

                // Verification off needs the explicit key, and says so at start.
                try await bed.gateway.terminate()
                try bed.gateway.rewrite(["upstream.tls.insecure": true])
                try await bed.gateway.start()
                // At warning level (text format: "<time> WARNING <label>: <message>").
                let warning = bed.gateway.currentRunLog.split(separator: "\n").first { $0.contains("upstream TLS does not verify the server") }
                #expect(warning?.contains(" WARNING ") == true, "\(warning ?? "no such line")")
                _ = try await bed.waitForUpstream(count: 3)
            }
        }
    }
}
