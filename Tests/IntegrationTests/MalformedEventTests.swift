import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct MalformedEventTests {
        /// A payload the daemon must reject, the reason it must give, and whether it can read the eventId.
        struct Case: Sendable, CustomStringConvertible {
            let deviceId: String
            let payload: String
            let reason: String
            /// nil: either the id or null is acceptable.
            let expectedEventId: String??

            var description: String { "\(deviceId) -> \(reason)" }
        }

        static let longId = String(repeating: "e", count: 65)
        static let cases: [Case] = [
            Case(deviceId: "bad-json", payload: #"{"eventId": "j-1", "type": "#, reason: "invalid json", expectedEventId: .some("j-1")),
            Case(deviceId: "bad-tail", payload: #"{"type": "t", "data": {"eventId": "inner"}, "eventId": "tail-1", "x": tru"#, reason: "invalid json", expectedEventId: .some("tail-1")),
            Case(deviceId: "bad-early", payload: #"{"type": t, "eventId": "never-read"}"#, reason: "invalid json", expectedEventId: .some(nil)),
            Case(deviceId: "bad-text", payload: "hello", reason: "invalid json", expectedEventId: .some(nil)),
            Case(deviceId: "bad-array", payload: #"[{"eventId":"a-1"}]"#, reason: "not a json object", expectedEventId: .some(nil)),
            Case(deviceId: "bad-string", payload: #""just a string""#, reason: "not a json object", expectedEventId: .some(nil)),
            Case(deviceId: "no-id", payload: #"{"type":"t","timestamp":1760000000000,"data":{}}"#, reason: "invalid eventId", expectedEventId: .some(nil)),
            Case(deviceId: "empty-id", payload: #"{"eventId":"","type":"t","timestamp":1760000000000,"data":{}}"#, reason: "invalid eventId", expectedEventId: nil),
            Case(deviceId: "number-id", payload: #"{"eventId":42,"type":"t","timestamp":1760000000000,"data":{}}"#, reason: "invalid eventId", expectedEventId: nil),
            Case(deviceId: "long-id", payload: #"{"eventId":"\#(longId)","type":"t","timestamp":1760000000000,"data":{}}"#, reason: "invalid eventId", expectedEventId: nil),
            Case(deviceId: "bad-type", payload: #"{"eventId":"t-1","type":5,"timestamp":1760000000000,"data":{}}"#, reason: "invalid type", expectedEventId: .some("t-1")),
            Case(deviceId: "bad-ts", payload: #"{"eventId":"ts-1","type":"t","timestamp":"yesterday","data":{}}"#, reason: "invalid timestamp", expectedEventId: .some("ts-1")),
        ]

        @Test func malformedEventsAreAckedRejectedWithTheirReasonAndNotForwarded() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                for item in Self.cases {
                    try await bed.device(item.deviceId).publishOnce(item.payload)
                }
                try await bed.waitForAcks(count: Self.cases.count)

                for item in Self.cases {
                    let acks = bed.acks(for: item.deviceId)
                    #expect(acks.count == 1, "\(item): acks \(acks)")
                    guard let ack = acks.first else { continue }
                    #expect(ack.shapeProblems.isEmpty, "\(item): \(ack.shapeProblems) in \(ack)")
                    #expect(ack.status == "rejected", "\(item): \(ack)")
                    #expect(ack.reason == item.reason, "\(item): \(ack)")
                    switch item.expectedEventId {
                    case .some(.some(let id)): #expect(ack.eventId == id, "\(item): \(ack)")
                    case .some(.none): #expect(ack.eventIdIsNull, "\(item): eventId should be null: \(ack)")
                    case .none: break
                    }
                }

                // Still serving: a valid event after all that is stored and is the only one forwarded.
                let valid = DeviceEvent(deviceId: "bad-json", seq: 1, eventId: "valid-after-rejects")
                try await bed.device("bad-json").publish([valid])
                let acks = try await bed.waitForAcks(count: 1) { $0.eventId == valid.eventId }
                #expect(acks.last?.status == "stored", "\(acks.last?.description ?? "-")")
                try await bed.waitForUpstream(count: 1)
                // The malformed messages came before bad-json's sentinel (and its valid event).
                try await bed.settle(through: "bad-json")
                #expect(bed.upstreamEvents.map(\.eventId) == [valid.eventId], "\(bed.upstreamEvents)")

                let stats = try await bed.gateway.outboxStats()
                let rejects = stats["rejects"] as? [String: Any] ?? [:]
                #expect(JSON.int(rejects["invalid json"]) == 4, "rejects: \(JSON.line(stats))")
            }
        }

        @Test func payloadOverTheLimitIsAckedRejectedPayloadTooLarge() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["limits.maxPayloadBytes": 1024])
                let device = bed.device("big-1")
                // eventId first: the ack names it although the payload is over the limit. eventId
                // after the limit: nothing within the limit names the event, so the ack cannot.
                let pad = String(repeating: "x", count: 1700)
                let oversized = #"{"eventId":"big-event","type":"t","data":"\#(pad)"}"#
                let idTooLate = #"{"type":"t","data":"\#(pad)","eventId":"late-id"}"#
                let fitting = DeviceEvent(deviceId: "big-1", seq: 2, eventId: "small-event", padding: 600)
                #expect(fitting.payload.utf8.count < 1000)

                try await device.publish(lines: [oversized, idTooLate, fitting.payload])
                let acks = try await bed.waitForAcks(count: 3)
                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks))")
                let rejected = acks.filter { $0.status == "rejected" }
                #expect(rejected.count == 2 && rejected.allSatisfy { $0.reason == "payload too large" }, "\(acks)")
                #expect(rejected.contains { $0.eventId == "big-event" }, "a rejected ack names the event it can read (CONTRACTS.md §1): \(acks)")
                #expect(rejected.contains { $0.eventIdIsNull }, "an eventId beyond the limit is not read: \(acks)")
                #expect(acks.contains { $0.eventId == "small-event" && $0.isStored }, "\(acks)")

                try await bed.waitForUpstream(count: 1)
                try await bed.settle(through: "big-1")
                #expect(bed.upstreamEvents.map(\.eventId) == ["small-event"], "\(bed.upstreamEvents)")
            }
        }
    }
}
