import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct GracefulShutdownTests {
        @Test func sigtermDuringTrafficExitsZeroAndNoEventIsLostAfterRestart() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let devices = (1...4).map { "term-\($0)" }
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 40)) })

                let batches = bed.batches(sent)
                let publishing = Task { try await DeviceClient.publishConcurrently(batches, interval: .milliseconds(15)) }
                defer { publishing.cancel() }
                try await bed.waitForAcks(count: 40)
                let exit = try await bed.gateway.terminate()
                #expect(exit == .exited(0), "SIGTERM during traffic: \(exit)\n\(bed.diagnostics)")

                try await bed.gateway.start()
                try await publishing.value

                // Nothing lost: every event is acked (the broker queued what came while the daemon was down)
                // and arrives upstream, in per-device order.
                let allIds = Set(sent.values.joined().map(\.eventId))
                let acks = try await bed.waitForAcceptedAcks(eventIds: allIds, timeout: .seconds(60))
                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks).prefix(10))")
                let upstream = try await bed.waitForUpstream(eventIds: allIds, timeout: .seconds(60))
                #expect(DeliveryCheck.orderProblems(upstream, sent: sent).isEmpty,
                        "\(DeliveryCheck.orderProblems(upstream, sent: sent))")
                #expect(DeliveryCheck.repeatProblems(upstream).isEmpty, "\(DeliveryCheck.repeatProblems(upstream).prefix(5))")
            }
        }

        @Test func sigtermWithUndeliveredEventsExitsZeroAndTheyArriveAfterRestart() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let upstreamBroker = try #require(bed.upstreamBroker)
                try await upstreamBroker.stop()

                let devices = (1...4).map { "held-\($0)" }
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 20)) })
                try await bed.publishConcurrently(sent)
                let acks = try await bed.waitForAcks(count: 80)
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").prefix(10))")

                let exit = try await bed.gateway.terminate()
                #expect(exit == .exited(0), "SIGTERM with undelivered events: \(exit)\n\(bed.diagnostics)")

                try await upstreamBroker.start()
                try await bed.gateway.start()
                let allIds = Set(sent.values.joined().map(\.eventId))
                let upstream = try await bed.waitForUpstream(eventIds: allIds, timeout: .seconds(60))
                #expect(DeliveryCheck.orderProblems(upstream, sent: sent).isEmpty,
                        "\(DeliveryCheck.orderProblems(upstream, sent: sent))")
                #expect(DeliveryCheck.repeatProblems(upstream).isEmpty, "\(DeliveryCheck.repeatProblems(upstream).prefix(5))")
            }
        }
    }
}
