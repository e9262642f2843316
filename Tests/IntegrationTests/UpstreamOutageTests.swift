import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct UpstreamOutageTests {
        @Test func eventsAreAckedStoredWhileUpstreamIsDownAndDrainInOrderWhenItReturns() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let upstreamBroker = try #require(bed.upstreamBroker)
                let devices = (1...4).map { "dev-\($0)" }

                // Upstream up: the daemon is connected and delivering.
                let before = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 10)) })
                try await bed.publishConcurrently(before)
                try await bed.waitForUpstream(count: 40)

                try await upstreamBroker.stop()
                let during = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 25, from: 10)) })
                try await bed.publishConcurrently(during)
                let acks = try await bed.waitForAcks(count: 140)
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").prefix(10))")

                // The outbox holds what could not be delivered.
                let stats = try await bed.gateway.outboxStats()
                let depth = JSON.int(stats["depth"]) ?? -1
                #expect(depth >= 100, "outbox depth \(depth) while upstream is down: \(JSON.line(stats))")

                try await upstreamBroker.start()
                let sent = before.merging(during) { $0 + $1 }
                let allIds = Set(sent.values.joined().map(\.eventId))
                let upstream = try await bed.waitForUpstream(eventIds: allIds, timeout: .seconds(60))
                #expect(DeliveryCheck.orderProblems(upstream, sent: sent).isEmpty,
                        "\(DeliveryCheck.orderProblems(upstream, sent: sent))")
                #expect(DeliveryCheck.repeatProblems(upstream).isEmpty, "\(DeliveryCheck.repeatProblems(upstream).prefix(5))")

                // Drained: nothing left to deliver.
                let drainedStats = try await bed.gateway.outboxStats(waitingUntil: { JSON.int($0["depth"]) == 0 })
                #expect(JSON.int(drainedStats["depth"]) == 0, "after draining: \(JSON.line(drainedStats))")
            }
        }
    }
}
