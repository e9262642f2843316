import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// `devices.ackQos`: the QoS of the acks on `device/{id}/ack` (1 by default, the contract's QoS). The guarantee does
    /// not rest on it: a device re-sends until it sees `stored` or `duplicate` (CONTRACTS.md §1), so
    /// an ack it misses costs one re-send that is answered `duplicate`.
    @Suite struct AckQoSTests {
        /// Acks as a QoS 1 subscriber sees them: at the lower of the gateway's QoS and its own.
        static func qosRecorder(_ bed: TestBed, filter: String = "device/+/ack", clientId: String? = nil) -> TopicRecorder {
            TopicRecorder("acks-qos", brokerPort: bed.deviceBroker.port, filters: [filter], in: bed.sandbox, recordsQoS: true, clientId: clientId)
        }

        @Test(arguments: [nil, 0, 1] as [Int?])
        func acksArriveAtTheConfiguredQoS(ackQos: Int?) async throws {
            try await withSandbox { sandbox in
                let overrides: GatewayConfig = ackQos.map { ["devices.ackQos": .int($0)] } ?? [:]
                let bed = try await TestBed.start(in: sandbox, overrides: overrides)
                let recorder = Self.qosRecorder(bed)
                try await recorder.start()
                try await bed.device("qos-1").publish(DeviceEvent.series(deviceId: "qos-1", count: 3))
                let acks = try await recorder.waitFor(count: 3)
                #expect(acks.map { Ack($0).status } == ["stored", "stored", "stored"], "\(acks)")
                let expected = ackQos ?? 1  // the default (CONTRACTS.md §1)
                #expect(acks.map(\.qos) == Array(repeating: expected, count: 3), "\(acks.map(\.qos))")
            }
        }

        @Test func anAckTheDeviceMissesCostsOneResendAnsweredDuplicate() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["devices.ackQos": 0])
                // The device's own subscription (a persistent session), offline when its ack goes out.
                let device = Self.qosRecorder(bed, filter: "device/lost-1/ack", clientId: "lost-1-acks")
                try await device.start()
                device.stop()
                let event = DeviceEvent(deviceId: "lost-1", seq: 1, eventId: "lost-event-1")
                try await bed.device("lost-1").publish([event])
                // Stored and acked (the always-subscribed recorder of the test bed sees the ack) …
                let sent = try await bed.waitForAcks(count: 1) { $0.eventId == "lost-event-1" }
                #expect(sent.map(\.status) == ["stored"], "\(sent)")
                // … but at QoS 0 the broker keeps nothing for the device's session while it is away.
                try await device.start()
                try await bed.device("lost-1").publish([event])
                let heard = try await device.waitFor(count: 1)
                let statuses = heard.map { Ack($0).status }
                #expect(statuses == ["duplicate"], "\(heard)")
                #expect(heard.map(\.qos) == [0])
                // Stored once, forwarded once.
                try await bed.settle(through: "lost-1")
                #expect(bed.upstreamEvents.map(\.eventId) == ["lost-event-1"], "\(bed.upstreamEvents)")
                #expect(bed.allAcks.compactMap(\.status) == ["stored", "duplicate"], "\(bed.allAcks)")
            }
        }

        @Test func theAckQoSChangesOnReload() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["devices.ackQos": 1])
                let recorder = Self.qosRecorder(bed)
                try await recorder.start()
                try await bed.device("qos-r").publish([DeviceEvent(deviceId: "qos-r", seq: 1)])
                let first = try await recorder.waitFor(count: 1)
                #expect(first.map(\.qos) == [1])

                try bed.gateway.reload(["devices.ackQos": 0])
                try await bed.gateway.waitForLog("configuration reloaded")
                try await bed.device("qos-r").publish([DeviceEvent(deviceId: "qos-r", seq: 2)])
                let both = try await recorder.waitFor(count: 2)
                #expect(both.map(\.qos) == [1, 0], "\(both)")
                #expect(bed.gateway.isRunning)
            }
        }
    }
}
