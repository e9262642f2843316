import BrokerTestSupport
import Foundation

/// A device simulated with Mosquitto's own command-line client, independent of the gateway's MQTT code.
struct DeviceClient: Sendable {
    static let publisher = "/usr/bin/mosquitto_pub"

    let deviceId: String
    let brokerPort: Int
    /// Where the client's output and payload files go.
    let directory: URL

    init(_ deviceId: String, brokerPort: Int, in sandbox: Sandbox) {
        self.deviceId = deviceId
        self.brokerPort = brokerPort
        directory = sandbox.directory
    }

    var eventTopic: String { "device/\(deviceId)/event" }

    /// Publishes `events` in order, QoS 1, over one connection (one `mosquitto_pub -l` process, one line per
    /// message), waiting `interval` between messages. Returns when the client has exited, which it does after
    /// the broker acknowledged every message.
    func publish(_ events: [DeviceEvent], interval: Duration = .zero) async throws {
        try await publish(lines: events.map(\.payload), interval: interval)
    }

    /// Publishes each line as one message on `device/{id}/event` (lines must not contain newlines).
    func publish(lines: [String], interval: Duration = .zero) async throws {
        let output = directory.appendingPathComponent("pub-\(deviceId.prefix(40))-\(UUID().uuidString.prefix(6)).log")
        let child = try ChildProcess(
            executable: Self.publisher,
            arguments: [
                "-h", "127.0.0.1", "-p", String(brokerPort), "-q", "1",
                "-i", "dev-\(deviceId.prefix(40))", "-t", eventTopic, "-l",
            ],
            outputFile: output,
            withInput: true
        )
        defer { if child.isRunning { child.kill() } }
        if interval == .zero {
            try child.write(Data(lines.map { $0 + "\n" }.joined().utf8))
        } else {
            for line in lines {
                try child.write(Data((line + "\n").utf8))
                try await Task.sleep(for: interval)
            }
        }
        child.closeInput()
        guard let exit = try await child.waitForExit(timeout: .seconds(120)) else {
            throw HarnessError.timeout("mosquitto_pub for \(deviceId) to finish", details: LogFile.tail(output))
        }
        guard exit == .exited(0) else {
            throw HarnessError("mosquitto_pub for \(deviceId) ended with \(exit)\n\(LogFile.tail(output))")
        }
    }

    /// Publishes one message with any payload bytes on any topic (QoS 1), e.g. an oversized payload or a
    /// topic with an invalid device id; `retain` keeps it at the broker (a presence announcement).
    static func publishOnce(topic: String, payload: Data, brokerPort: Int, in directory: URL, retain: Bool = false) async throws {
        let id = UUID().uuidString.prefix(8)
        let payloadFile = directory.appendingPathComponent("payload-\(id).bin")
        let output = directory.appendingPathComponent("pub-once-\(id).log")
        try payload.write(to: payloadFile)
        let child = try ChildProcess(
            executable: publisher,
            arguments: [
                "-h", "127.0.0.1", "-p", String(brokerPort), "-q", "1",
                "-i", "dev-once-\(id)", "-t", topic, "-f", payloadFile.path,
            ] + (retain ? ["-r"] : []),
            outputFile: output
        )
        defer { if child.isRunning { child.kill() } }
        guard let exit = try await child.waitForExit(timeout: .seconds(30)) else {
            throw HarnessError.timeout("mosquitto_pub on \(topic) to finish", details: LogFile.tail(output))
        }
        guard exit == .exited(0) else {
            throw HarnessError("mosquitto_pub on \(topic) ended with \(exit)\n\(LogFile.tail(output))")
        }
    }

    /// Publishes each device's events concurrently, each device over its own connection and in order.
    static func publishConcurrently(_ batches: [(DeviceClient, [DeviceEvent])], interval: Duration = .zero) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (client, events) in batches {
                group.addTask { try await client.publish(events, interval: interval) }
            }
            try await group.waitForAll()
        }
    }

    /// One message on this device's event topic.
    func publishOnce(_ payload: String) async throws {
        try await Self.publishOnce(topic: eventTopic, payload: Data(payload.utf8), brokerPort: brokerPort, in: directory)
    }
}
