import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The harness itself, without the daemon: brokers, recorders and simulated devices.
    @Suite struct HarnessTests {
        @Test func recorderReceivesDevicePublishesInOrderAcrossBrokerRestart() async throws {
            try await withSandbox { sandbox in
                let broker = try MosquittoBroker("device", in: sandbox)
                try await broker.start()
                let recorder = TopicRecorder("events", brokerPort: broker.port, filters: ["device/+/event"], in: sandbox)
                try await recorder.start()

                let device = DeviceClient("dev-1", brokerPort: broker.port, in: sandbox)
                let events = DeviceEvent.series(deviceId: "dev-1", count: 100)
                try await device.publish(events)
                let received = try await recorder.waitFor(count: 100)
                #expect(received.map(\.text) == events.map(\.payload))
                #expect(received.allSatisfy { $0.topic == "device/dev-1/event" })

                // Messages published while the recorder is disconnected are kept for its persistent session.
                // Also proves children get SIGTERM (see Process.runWithCleanSignalMask): Mosquitto exits 0 on it.
                #expect(try await broker.stop() == .exited(0))
                try await broker.start()
                let more = DeviceEvent.series(deviceId: "dev-1", count: 10, from: 100)
                try await device.publish(more)
                let all = try await recorder.waitFor(count: 110)
                #expect(all.suffix(10).map(\.text) == more.map(\.payload))
                #expect(broker.logText.contains("Saving in-memory database"))
            }
        }

        @Test func oneShotPublishCarriesArbitraryBytes() async throws {
            try await withSandbox { sandbox in
                let broker = try MosquittoBroker("device", in: sandbox)
                try await broker.start()
                let recorder = TopicRecorder("raw", brokerPort: broker.port, filters: ["device/#"], in: sandbox)
                try await recorder.start()
                let bytes = Data([0x00, 0xFF, 0x0A, 0x20, 0x41] + Array(repeating: 0x78, count: 3000))
                try await DeviceClient.publishOnce(topic: "device/bad id/event", payload: bytes, brokerPort: broker.port, in: sandbox.directory)
                let received = try await recorder.waitFor(count: 1)
                #expect(received.first?.topic == "device/bad id/event")
                #expect(received.first?.payload == bytes)
            }
        }

        @Test func gatewayConfigIsWrittenAsNestedYAML() {
            let config: GatewayConfig = [
                "upstream.tls.caFile": "/x/ca.crt", "upstream.port": 8883, "hub.id": "h",
                "upstream.topic": "hubs/{hubId}", "store.whenFull": .raw("sometimes"),
            ]
            #expect(config.yaml == """
                hub:
                  id: "h"
                store:
                  whenFull: sometimes
                upstream:
                  port: 8883
                  tls:
                    caFile: "/x/ca.crt"
                  topic: "hubs/{hubId}"

                """)
        }

        @Test func testCertificatesAllowATLSRecorderWithPassword() async throws {
            try await withSandbox { sandbox in
                let directory = try sandbox.makeDirectory("tls")
                let certificates = try await TestCertificates.make(in: directory)
                let passwords = try await MosquittoPasswordFile.make(user: "cloud", password: "s3cret", in: directory)
                let broker = try MosquittoBroker(
                    "tls", in: sandbox, allowAnonymous: false,
                    listenerOptions: [
                        "cafile \(certificates.caFile.path)", "certfile \(certificates.certFile.path)",
                        "keyfile \(certificates.keyFile.path)",
                    ],
                    extraConfig: ["password_file \(passwords.path)"]
                )
                try await broker.start()
                let recorder = TopicRecorder(
                    "tls", brokerPort: broker.port, filters: ["hubs/#"], in: sandbox,
                    connectionOptions: ["--cafile", certificates.caFile.path, "-u", "cloud", "-P", "s3cret"]
                )
                try await recorder.start()
            }
        }
    }
}
