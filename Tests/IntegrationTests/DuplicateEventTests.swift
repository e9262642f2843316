import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct DuplicateEventTests {
        @Test func repeatedEventIdIsAckedDuplicateAndForwardedOnceAlsoAfterForwarding() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let device = bed.device("dup-1")
                let first = DeviceEvent(deviceId: "dup-1", seq: 1, eventId: "dup-event-1")
                let second = DeviceEvent(deviceId: "dup-1", seq: 2, eventId: "dup-event-2")

                // Stored and forwarded, then repeated (same id, different content): a duplicate.
                try await device.publish([first])
                try await bed.waitForAcks(count: 1)
                try await bed.waitForUpstream(count: 1)
                let sameIdOtherContent = DeviceEvent(deviceId: "dup-1", seq: 99, eventId: "dup-event-1")
                try await device.publish([first, sameIdOtherContent])

                // Repeated right away, before it can have been forwarded.
                try await device.publish([second, second])
                let acks = try await bed.waitForAcks(count: 5)
                try await bed.waitForUpstream(count: 2)
                // A stray second copy would have been forwarded before dup-1's sentinel.
                try await bed.settle(through: "dup-1")

                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks))")
                // Per event id; the order of acks across event ids is not part of the contract.
                let statuses = Dictionary(grouping: bed.allAcks, by: { $0.eventId ?? "nil" })
                    .mapValues { $0.compactMap(\.status).sorted() }
                #expect(statuses == [
                    "dup-event-1": ["duplicate", "duplicate", "stored"],
                    "dup-event-2": ["duplicate", "stored"],
                ], "\(bed.allAcks)")

                let upstream = bed.upstreamEvents
                #expect(upstream.map(\.eventId) == ["dup-event-1", "dup-event-2"], "\(upstream)")
                // The first copy is the one kept.
                let forwardedFirst = upstream.first { $0.eventId == "dup-event-1" }
                #expect(forwardedFirst?.problems(comparedTo: first, hubId: TestBed.hubId) == [], "\(upstream)")
            }
        }
    }
}
