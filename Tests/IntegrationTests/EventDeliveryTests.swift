import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct EventDeliveryTests {
        @Test func eventsOfFourDevicesArriveUpstreamExactlyOnceInPerDeviceOrderAndAreAckedStored() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let devices = (1...4).map { "sensor-\($0)" }
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 50)) })
                let total = 200

                try await bed.publishConcurrently(sent)
                try await bed.waitForAcks(count: total)
                try await bed.waitForUpstream(count: total)
                // A stray second copy would have been forwarded before its device's sentinel: checked
                // after the sentinels, "exactly once" is observed rather than waited for.
                try await bed.settle(through: "sensor-1", "sensor-2", "sensor-3", "sensor-4")

                let acks = bed.allAcks
                #expect(acks.count == total, "acks: \(acks.count)")
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").prefix(10))")
                for device in devices {
                    let ackedIds = Set(bed.acks(for: device).compactMap(\.eventId))
                    #expect(ackedIds == Set(sent[device]!.map(\.eventId)), "acked ids of \(device)")
                }

                let upstream = bed.upstreamEvents
                #expect(upstream.count == total, "upstream count \(upstream.count), duplicates \(DeliveryCheck.duplicates(upstream))")
                #expect(DeliveryCheck.duplicates(upstream).isEmpty)
                for device in devices {
                    #expect(DeliveryCheck.firstArrivals(upstream, deviceId: device) == sent[device]!.map(\.eventId),
                            "per-device order of \(device)")
                }
                let sentById = Dictionary(uniqueKeysWithValues: sent.values.joined().map { ($0.eventId, $0) })
                let fieldProblems = upstream.flatMap { event -> [String] in
                    guard let id = event.eventId, let original = sentById[id] else { return ["unknown event \(event)"] }
                    return event.problems(comparedTo: original, hubId: TestBed.hubId).map { "\(id): \($0)" }
                }
                #expect(fieldProblems.isEmpty, "\(fieldProblems.prefix(10))\nexample: \(upstream.first?.description ?? "-")")
            }
        }
    }
}
