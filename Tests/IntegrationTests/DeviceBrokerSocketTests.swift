import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// `mqtt.unixSocket`: the daemon reaches the device broker over its Unix domain socket while the
    /// devices use TCP, through the same real mosquitto; events are stored, acked and forwarded in
    /// order, and a socket that disappears with its broker is a clear connect error until the broker
    /// is back.
    @Suite struct DeviceBrokerSocketTests {
        static let deviceLink = "edge-gateway.device.mqtt: "

        /// `count` events of a new device (over TCP): each acked `stored`, all forwarded in order.
        static func deliver(_ device: String, count: Int, through bed: TestBed) async throws {
            let events = DeviceEvent.series(deviceId: device, count: count)
            try await bed.device(device).publish(events)
            let acks = try await bed.waitForAcceptedAcks(eventIds: Set(events.map(\.eventId)), timeout: .seconds(30))
            let notStored = acks.filter { !$0.isStored }
            #expect(notStored.isEmpty, "\(device): \(notStored.prefix(5))")
            let upstream = try await bed.waitForUpstream(eventIds: Set(events.map(\.eventId)), timeout: .seconds(30))
            DeliveryCheck.expectOrderedDelivery(upstream, sent: [device: events])
        }

        @Test func tcpDevicesAreAckedAndForwardedWhileTheDaemonUsesTheSocketAcrossABrokerRestart() async throws {
            try await withSandbox { sandbox in
                // sun_path holds 107 bytes: a short directory that goes with the sandbox.
                let socket = try sandbox.makeShortDirectory().appendingPathComponent("device.sock").path
                let bed = try await TestBed.start(
                    in: sandbox, overrides: ["mqtt.unixSocket": .string(socket)], deviceBrokerConfig: ["listener 0 \(socket)"])
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT subscribed")
                #expect(bed.gateway.currentRunLog.contains("mqtt.broker=unix:\(socket)"), "\(bed.diagnostics)")
                // The broker saw the daemon's client come over the socket, the device over TCP.
                #expect(bed.deviceBroker.logText.contains("from \(socket)"), "\(bed.deviceBroker.diagnostics)")

                try await Self.deliver("sock-1", count: 20, through: bed)

                // The broker stops (its socket file goes with it): the daemon says where it cannot
                // connect and why, and keeps running.
                let failedBefore = bed.gateway.currentRunLogCount(of: Self.deviceLink + "cannot connect to the MQTT broker")
                try await bed.deviceBroker.stop()
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT connection lost")
                try await bed.gateway.waitForLog(Self.deviceLink + "cannot connect to the MQTT broker", occurrences: failedBefore + 1)
                let failure = bed.gateway.currentRunLog.split(separator: "\n")
                    .last { $0.contains(Self.deviceLink + "cannot connect to the MQTT broker") }.map(String.init) ?? ""
                #expect(failure.contains("unix:\(socket)"), "\(failure)")
                #expect(bed.gateway.isRunning)

                // Back: the daemon connects over the socket again, and new events go the same way.
                try await bed.deviceBroker.start()
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT subscribed", occurrences: 2)
                try await Self.deliver("sock-2", count: 20, through: bed)

                // SIGKILL leaves the socket file behind (connects to it are refused); the broker's next
                // start replaces it, and the daemon is back over it.
                bed.deviceBroker.kill()
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT connection lost", occurrences: 2)
                #expect(FileManager.default.fileExists(atPath: socket), "a killed mosquitto leaves its socket")
                try await bed.deviceBroker.start()
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT subscribed", occurrences: 3)
                try await Self.deliver("sock-3", count: 10, through: bed)
                #expect(bed.gateway.isRunning)
            }
        }
    }
}
