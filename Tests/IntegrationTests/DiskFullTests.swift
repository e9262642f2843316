import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The store's file cap (SQLite `max_page_count`) reached with the upstream down behaves like a
    /// full disk: SQLITE_FULL on the commit.
    @Suite struct DiskFullTests {
        /// 64 pages of 4 KiB: the file fills long before the byte cap would.
        static let fileCap = 262_144

        @Test func fullStoreRejectsNewEventsKeepsStoredOnesAndRecoversOnceForwarded() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(
                    in: sandbox,
                    overrides: [
                        "store.maxBytes": .int(Self.fileCap), "store.maxFileBytes": .int(Self.fileCap),
                        "store.whenFull": "dropOldest",
                    ])
                let upstreamBroker = try #require(bed.upstreamBroker)
                try await upstreamBroker.stop()

                // About 600 KiB of events into a 256 KiB file: the later ones cannot be written.
                let events = DeviceEvent.series(deviceId: "full-1", count: 300, padding: 2000)
                try await bed.device("full-1").publish(events)
                let acks = try await bed.waitForAcks(count: events.count, timeout: .seconds(60))
                let stored = acks.filter(\.isStored).compactMap(\.eventId)
                let full = acks.filter { $0.status == "rejected" && $0.reason == "store full" }
                #expect(!stored.isEmpty, "some events fit")
                #expect(!full.isEmpty, "the rest is refused as store full, not dropped silently")
                #expect(stored.count + full.count == events.count, "\(acks.prefix(5))")
                #expect(bed.gateway.isRunning)
                // Reject counters are written with the next commit that finds room; wait for it.
                let stats = try await bed.gateway.outboxStats(waitingUntil: {
                    JSON.int(($0["rejects"] as? [String: Any])?["store full"]) == full.count
                })
                #expect(JSON.int(stats["depth"]) == stored.count, "\(JSON.line(stats))")
                #expect(JSON.int((stats["rejects"] as? [String: Any])?["store full"]) == full.count, "\(JSON.line(stats))")

                // Forwarding goes on: everything stored arrives, in order.
                try await upstreamBroker.start()
                let upstream = try await bed.waitForUpstream(eventIds: Set(stored), timeout: .seconds(60))
                #expect(upstream.compactMap(\.eventId).filter(Set(stored).contains).uniqued() == stored)

                // And once the store has drained, a new event is stored again.
                _ = try await bed.gateway.outboxStats(waitingUntil: { JSON.int($0["depth"]) == 0 })
                let after = DeviceEvent.series(deviceId: "full-1", count: 1, from: 1000)
                try await bed.device("full-1").publish(after)
                let last = try await bed.waitForAcks(count: events.count + 1, timeout: .seconds(30))
                #expect(last.last(where: { $0.eventId == after[0].eventId })?.isStored == true, "\(last.suffix(3))")
            }
        }
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each only at its first appearance.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
