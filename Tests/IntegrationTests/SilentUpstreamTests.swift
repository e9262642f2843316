import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The upstream port is held by something that accepts TCP and never answers (a hung cloud endpoint, a
    /// middlebox swallowing the connection), then a real broker takes that port.
    @Suite struct SilentUpstreamTests {
        @Test func upstreamThatAcceptsTCPButNeverSendsCONNACKDoesNotBlockIngressAndEventsDrainInOrderOnceABrokerAnswers() async throws {
            try await withSandbox { sandbox in
                // The broker that takes over later: started once so the upstream recorder's persistent session
                // (and its subscription) is in its persistence, then stopped to free the port for the silent server.
                let broker = try MosquittoBroker("upstream", in: sandbox)
                try await broker.start()
                let recorder = TopicRecorder("upstream", brokerPort: broker.port, filters: ["hubs/#"], in: sandbox)
                try await recorder.start()
                recorder.stop()
                try await broker.stop()

                let silent = try SilentTCPServer(port: broker.port)
                defer { silent.stop() }
                let bed = try await TestBed.start(
                    in: sandbox, upstream: .unreachable,
                    overrides: ["upstream.port": .int(broker.port), "upstream.connectTimeoutSeconds": 1]
                )

                // Ready (TestBed.start waited for `gateway ready`) and storing while upstream hangs, before and after
                // the daemon gives up on a silent connection (saying why) and tries again.
                let devices = (1...3).map { "quiet-\($0)" }
                let before = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 10)) })
                let after = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 10, from: 10)) })
                let sent = before.merging(after) { $0 + $1 }
                let allIds = Set(sent.values.joined().map(\.eventId))
                try await bed.publishConcurrently(before)
                try await bed.waitForAcks(count: 30)
                try await bed.gateway.waitForLog("no CONNACK within")
                try await silent.waitForConnections(2)
                try await bed.publishConcurrently(after)
                let acks = try await bed.waitForAcks(count: allIds.count)
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").prefix(10))")
                #expect(Set(acks.compactMap(\.eventId)) == allIds)
                #expect(silent.receivedBytes > 0, "the daemon should have sent CONNECT")
                #expect(!bed.gateway.currentRunLog.contains("upstream link up"), "\(bed.diagnostics)")
                let held = try await bed.gateway.outboxStats()
                #expect(JSON.int(held["depth"]) == allIds.count, "nothing can have been delivered: \(JSON.line(held))")

                // A real broker on the same port: everything drains, per device in order.
                silent.stop()
                try await broker.start()
                try await recorder.start()
                let messages = try await recorder.waitUntil("\(allIds.count) distinct event ids", timeout: .seconds(60)) { messages in
                    allIds.isSubset(of: Set(messages.compactMap { UpstreamEvent($0).eventId }))
                }
                let upstream = messages.map(UpstreamEvent.init)
                DeliveryCheck.expectOrderedDelivery(upstream, sent: sent)
                #expect(bed.gateway.currentRunLog.contains("upstream link up"))

                let drained = try await bed.gateway.outboxStats(waitingUntil: { JSON.int($0["depth"]) == 0 })
                #expect(JSON.int(drained["depth"]) == 0, "after draining: \(JSON.line(drained))")
                #expect(bed.gateway.isRunning)
            }
        }
    }
}
