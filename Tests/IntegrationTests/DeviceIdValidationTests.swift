import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct DeviceIdValidationTests {
        static let invalidIds = [
            "bad.id", "bad id", "", String(repeating: "a", count: 65), "ünicode", "semi;colon",
        ]

        @Test func eventsFromInvalidDeviceIdsGetNoAckAreNotForwardedAndTheDaemonKeepsServing() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                for id in Self.invalidIds {
                    let event = DeviceEvent(deviceId: "x", seq: 1, eventId: "from-invalid-id")
                    try await DeviceClient.publishOnce(
                        topic: "device/\(id)/event", payload: Data(event.payload.utf8),
                        brokerPort: bed.deviceBroker.port, in: sandbox.directory
                    )
                }
                // A valid id right after, including the longest valid one.
                let longest = String(repeating: "b", count: 64)
                let good = DeviceEvent(deviceId: "good-1", seq: 1)
                let goodLong = DeviceEvent(deviceId: longest, seq: 1, eventId: "longest-id-1")
                try await bed.device("good-1").publish([good])
                try await bed.device(longest).publish([goodLong])

                try await bed.waitForAcks(count: 2)
                try await bed.waitForUpstream(count: 2)
                // The invalid ids came before good-1's sentinel: had anything of theirs been acked or
                // forwarded, it would have been by the time the sentinel is.
                try await bed.settle(through: "good-1")

                let acks = bed.allAcks
                #expect(Set(acks.map(\.topic)) == ["device/good-1/ack", "device/\(longest)/ack"], "\(acks)")
                #expect(acks.allSatisfy { $0.isStored }, "\(acks)")
                #expect(Set(bed.upstreamEvents.compactMap(\.deviceId)) == ["good-1", longest], "\(bed.upstreamEvents)")
                #expect(bed.gateway.isRunning)
            }
        }
    }
}
