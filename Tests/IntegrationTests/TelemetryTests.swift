import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// `device/{id}/telemetry` (CONTRACTS.md section 1) is stored, acked and forwarded exactly like events (README,
    /// "telemetry").
    @Suite struct TelemetryTests {
        @Test func telemetryIsAckedOnTheAckTopicAndForwardedWithTheEventEnvelopeOnTheEventTopicInOrder() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let deviceId = "tele-1"
                let device = bed.device(deviceId)
                // One device, one sequence: events, then telemetry, then events again.
                let first = DeviceEvent.series(deviceId: deviceId, count: 3)
                let telemetry = (3..<8).map { DeviceEvent(deviceId: deviceId, seq: $0, type: "telemetry.battery") }
                let last = DeviceEvent.series(deviceId: deviceId, count: 2, from: 8)
                try await device.publish(first)
                try await device.publishTelemetry(telemetry)
                try await device.publish(last)
                let sent = first + telemetry + last

                let acks = try await bed.waitForAcks(count: sent.count)
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored"))")
                #expect(acks.allSatisfy { $0.topic == "device/\(deviceId)/ack" }, "\(acks)")
                #expect(Set(acks.compactMap(\.eventId)) == Set(sent.map(\.eventId)))

                let upstream = try await bed.waitForUpstream(eventIds: Set(sent.map(\.eventId)))
                #expect(DeliveryCheck.firstArrivals(upstream, deviceId: deviceId) == sent.map(\.eventId))
                let sentById = Dictionary(uniqueKeysWithValues: sent.map { ($0.eventId, $0) })
                // Same topic, same fields, same values as for an event (problems(comparedTo:) checks the default
                // topic template `hubs/{hubId}/events/{deviceId}` and every envelope field).
                let fieldProblems = upstream.flatMap { event -> [String] in
                    guard let id = event.eventId, let original = sentById[id] else { return ["unknown event \(event)"] }
                    return event.problems(comparedTo: original, hubId: TestBed.hubId).map { "\(id): \($0)" }
                }
                #expect(fieldProblems.isEmpty, "\(fieldProblems.prefix(10))")
                let keySets = Set(upstream.map { $0.object.map { $0.keys.sorted() } ?? [] })
                #expect(keySets == [UpstreamEvent.fields.sorted()], "envelope keys of telemetry and events: \(keySets)")
            }
        }

        @Test func telemetryFollowsAConfiguredUpstreamTopicTemplateLikeEvents() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["upstream.topic": "hubs/site-{hubId}/in/{deviceId}/data"])
                let event = DeviceEvent(deviceId: "tele-2", seq: 0)
                let sample = DeviceEvent(deviceId: "tele-2", seq: 1, type: "telemetry.rssi")
                try await bed.device("tele-2").publish([event])
                try await bed.device("tele-2").publishTelemetry([sample])
                try await bed.waitForAcks(count: 2)
                let upstream = try await bed.waitForUpstream(eventIds: [event.eventId, sample.eventId])
                let topics = Dictionary(upstream.map { ($0.eventId ?? "nil", $0.topic) }, uniquingKeysWith: { first, _ in first })
                #expect(topics[event.eventId] == "hubs/site-\(TestBed.hubId)/in/tele-2/data", "\(upstream)")
                #expect(topics[sample.eventId] == topics[event.eventId], "\(upstream)")
            }
        }

        @Test func repeatedTelemetryIsAckedDuplicateAndMalformedTelemetryIsRejectedLikeEvents() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let device = bed.device("tele-3")
                let sample = DeviceEvent(deviceId: "tele-3", seq: 0, type: "telemetry.temp")
                try await device.publishTelemetry([sample, sample])
                try await DeviceClient.publishOnce(
                    topic: device.telemetryTopic, payload: Data(#"{"eventId": "t-broken", "type": "#.utf8),
                    brokerPort: bed.deviceBroker.port, in: sandbox.directory
                )
                try await DeviceClient.publishOnce(
                    topic: device.telemetryTopic, payload: Data(#"{"eventId":"t-bad-ts","type":"t","timestamp":"now"}"#.utf8),
                    brokerPort: bed.deviceBroker.port, in: sandbox.directory
                )
                let acks = try await bed.waitForAcks(count: 4)
                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks))")
                // Per message; acks of different messages may come in any order.
                let statuses = Dictionary(grouping: acks, by: { $0.eventId ?? "null" }).mapValues { $0.compactMap(\.status).sorted() }
                #expect(statuses == [sample.eventId: ["duplicate", "stored"], "t-broken": ["rejected"], "t-bad-ts": ["rejected"]], "\(acks)")
                #expect(acks.first { $0.eventId == "t-broken" }?.reason == "invalid json", "\(acks)")
                #expect(acks.first { $0.eventId == "t-bad-ts" }?.reason == "invalid timestamp", "\(acks)")

                try await bed.waitForUpstream(count: 1)
                // Whatever tele-3 sent before its sentinel has been forwarded by the time the sentinel is.
                try await bed.settle(through: "tele-3")
                #expect(bed.upstreamEvents.map(\.eventId) == [sample.eventId], "\(bed.upstreamEvents)")
            }
        }
    }
}

extension DeviceClient {
    var telemetryTopic: String { "device/\(deviceId)/telemetry" }

    /// Publishes `events` on `device/{id}/telemetry`, in order, one QoS 1 message (and `mosquitto_pub`) each.
    func publishTelemetry(_ events: [DeviceEvent]) async throws {
        for event in events {
            try await Self.publishOnce(topic: telemetryTopic, payload: Data(event.payload.utf8), brokerPort: brokerPort, in: directory)
        }
    }
}
