import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The store cap with nothing draining it (the upstream port has no listener).
    @Suite struct StoreCapacityTests {
        static let maxBytes = 20_000
        static let count = 120

        /// 120 events of about 450 bytes: well over the cap.
        static var events: [DeviceEvent] { DeviceEvent.series(deviceId: "cap-1", count: count, padding: 250) }

        @Test func whenFullRejectNewLaterEventsAreAckedRejectedStoreFull() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(
                    in: sandbox, upstream: .unreachable,
                    overrides: ["store.maxBytes": .int(Self.maxBytes), "store.whenFull": "rejectNew"]
                )
                try await bed.device("cap-1").publish(Self.events)
                let acks = try await bed.waitForAcks(count: Self.count)
                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks).prefix(5))")

                let stored = acks.filter(\.isStored)
                let full = acks.filter { $0.status == "rejected" && $0.reason == "store full" }
                #expect(!stored.isEmpty, "nothing stored: \(acks.prefix(3))")
                #expect(!full.isEmpty, "no 'store full' rejection: \(acks.suffix(3))")
                #expect(stored.count + full.count == Self.count, "other acks: \(acks.filter { !$0.isStored && $0.reason != "store full" }.prefix(5))")
                // Nothing drains, so once full, a later event is not stored.
                #expect(acks.last?.reason == "store full", "\(acks.suffix(3))")

                let stats = try await bed.gateway.outboxStats()
                #expect(JSON.int(stats["depth"]) == stored.count, "\(JSON.line(stats))")
                #expect((JSON.int(stats["bytes"]) ?? Int.max) <= Self.maxBytes, "\(JSON.line(stats))")
                let rejects = stats["rejects"] as? [String: Any] ?? [:]
                #expect(JSON.int(rejects["store full"]) == full.count, "\(JSON.line(stats))")
            }
        }

        @Test func whenFullDropOldestEveryEventIsStoredAndDropsAreCountedAsCapacity() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(
                    in: sandbox, upstream: .unreachable,
                    overrides: ["store.maxBytes": .int(Self.maxBytes), "store.whenFull": "dropOldest"]
                )
                try await bed.device("cap-1").publish(Self.events)
                let acks = try await bed.waitForAcks(count: Self.count)
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").prefix(5))")

                let stats = try await bed.gateway.outboxStats()
                let drops = stats["drops"] as? [String: Any] ?? [:]
                let capacityDrops = JSON.int(drops["capacity"]) ?? 0
                let depth = JSON.int(stats["depth"]) ?? -1
                #expect(capacityDrops > 0, "\(JSON.line(stats))")
                #expect((JSON.int(stats["bytes"]) ?? Int.max) <= Self.maxBytes, "\(JSON.line(stats))")
                // Nothing was delivered or expired: every event is either still there or dropped for capacity.
                #expect(depth + capacityDrops == Self.count, "\(JSON.line(stats))")
                // The newest survive.
                let devices = stats["devices"] as? [[String: Any]] ?? []
                #expect(devices.count == 1 && devices.first?["deviceId"] as? String == "cap-1", "\(JSON.line(stats))")
            }
        }
    }
}
