import BrokerTestSupport
import Foundation

/// Records every message on some topic filters with `mosquitto_sub`, for checking what the daemon published.
///
/// The subscriber uses a persistent session (`-c` with a fixed client id) and QoS 1, so it keeps its messages
/// across a restart of its broker. Output is `-F '%x %t'` (payload in hex, then the topic) so that any payload
/// bytes, newlines included, survive. `start()` returns only once the subscription is active: it publishes
/// probe messages on a topic the filter matches until one comes back; probes are left out of `messages`.
final class TopicRecorder {
    static let subscriber = "/usr/bin/mosquitto_sub"
    static let publisher = "/usr/bin/mosquitto_pub"
    private static let probeMarker = "__probe__"

    let name: String
    let brokerPort: Int
    let filters: [String]
    let clientId: String
    let outputFile: URL
    private let errorFile: URL
    private let connectionOptions: [String]
    /// Each line starts with the QoS the message arrived at (``RecordedMessage/qos``).
    private let recordsQoS: Bool
    private let sandbox: Sandbox
    private var child: ChildProcess?

    /// - Parameters:
    ///   - connectionOptions: extra `mosquitto_sub`/`mosquitto_pub` options, e.g. `--cafile`, `-u`, `-P`.
    ///   - recordsQoS: note the QoS each message arrived at (`-F '%q %x %t'`): the lower of the
    ///     publisher's and this subscription's (QoS 1).
    ///   - clientId: a fixed client id, for a recorder that stands for a device (its session).
    init(
        _ name: String, brokerPort: Int, filters: [String], in sandbox: Sandbox, connectionOptions: [String] = [],
        recordsQoS: Bool = false, clientId: String? = nil
    ) {
        self.name = name
        self.recordsQoS = recordsQoS
        self.brokerPort = brokerPort
        self.filters = filters
        self.sandbox = sandbox
        self.connectionOptions = connectionOptions
        self.clientId = clientId ?? "recorder-\(name)-\(UUID().uuidString.prefix(8))"
        outputFile = sandbox.url("recorder-\(name).out")
        errorFile = sandbox.url("recorder-\(name).err")
    }

    deinit {
        child?.kill()
    }

    func start(timeout: Duration = .seconds(15)) async throws {
        guard child == nil else { return }
        // stdout is the record; stderr goes elsewhere so error text cannot be mistaken for a message.
        let arguments =
            ["-h", "127.0.0.1", "-p", String(brokerPort), "-q", "1", "-c", "-i", clientId, "-F", recordsQoS ? "%q %x %t" : "%x %t"]
            + connectionOptions + filters.flatMap { ["-t", $0] }
        let child = try ChildProcess(
            executable: Self.subscriber,
            arguments: arguments,
            outputFile: outputFile,
            errorFile: errorFile
        )
        sandbox.track(child)
        self.child = child
        try await waitForProbe(timeout: timeout)
    }

    /// Ends the subscriber. Its session stays on the broker.
    func stop() {
        child?.kill()
        child = nil
    }

    /// Messages received so far, in arrival order, without probes.
    var messages: [RecordedMessage] {
        allLines().filter { !$0.text.hasPrefix(Self.probeMarker) }
    }

    /// Waits until `condition` holds for the messages received so far, and returns them.
    @discardableResult
    func waitUntil(
        _ what: String,
        timeout: Duration = .seconds(30),
        _ condition: ([RecordedMessage]) -> Bool
    ) async throws -> [RecordedMessage] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let current = messages
            if condition(current) { return current }
            if let child, !child.isRunning {
                throw HarnessError("recorder \(name) exited (\(child.exit!)) while waiting for \(what)\n\(LogFile.tail(errorFile))")
            }
            if ContinuousClock.now >= deadline {
                let sample = current.suffix(5).map(\.description).joined(separator: "\n")
                throw HarnessError.timeout(
                    "\(what) on recorder \(name)",
                    details: "received \(current.count) messages; last ones:\n\(sample)\n\(LogFile.tail(errorFile, lines: 10))"
                )
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Waits until at least `count` messages (matching `predicate`) have arrived; returns all messages.
    @discardableResult
    func waitFor(
        count: Int,
        timeout: Duration = .seconds(30),
        where predicate: (RecordedMessage) -> Bool = { _ in true }
    ) async throws -> [RecordedMessage] {
        try await waitUntil("\(count) messages", timeout: timeout) { messages in
            messages.lazy.filter(predicate).count >= count
        }
    }

    // MARK: - Probing

    private func waitForProbe(timeout: Duration) async throws {
        let probeTopic = filters[0].split(separator: "/", omittingEmptySubsequences: false)
            .map { $0 == "+" || $0 == "#" ? Self.probeMarker : String($0) }
            .joined(separator: "/")
        // Fresh for every start: a restarted recorder (same client id) must see its new probe.
        let payload = Self.probeMarker + clientId + "-" + UUID().uuidString.prefix(8)
        let deadline = ContinuousClock.now + timeout
        while true {
            try await publishProbe(topic: probeTopic, payload: payload)
            let probeDeadline = ContinuousClock.now + .milliseconds(500)
            while ContinuousClock.now < probeDeadline {
                if allLines().contains(where: { $0.text == payload }) { return }
                if let child, !child.isRunning {
                    throw HarnessError("recorder \(name) exited (\(child.exit!))\n\(LogFile.tail(errorFile))")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            if ContinuousClock.now >= deadline {
                throw HarnessError.timeout("recorder \(name) to subscribe to \(filters)", details: LogFile.tail(errorFile))
            }
        }
    }

    private func publishProbe(topic: String, payload: String) async throws {
        let probe = try ChildProcess(
            executable: Self.publisher,
            arguments: ["-h", "127.0.0.1", "-p", String(brokerPort), "-q", "1", "-t", topic, "-m", payload]
                + connectionOptions,
            outputFile: errorFile
        )
        defer { if probe.isRunning { probe.kill() } }
        _ = try await probe.waitForExit(timeout: .seconds(10))
    }

    // MARK: - Parsing

    /// Complete lines of the output file: `<hex payload> <topic>` (`<qos> <hex payload> <topic>`
    /// with `recordsQoS`).
    private func allLines() -> [RecordedMessage] {
        let text = LogFile.text(outputFile)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        lines.removeLast()  // empty after the final newline, or a line still being written
        return lines.compactMap { whole in
            var line = whole
            var qos: Int?
            if recordsQoS {
                guard let space = line.firstIndex(of: " "), let value = Int(line[..<space]) else { return nil }
                qos = value
                line = line[line.index(after: space)...]
            }
            guard let space = line.firstIndex(of: " ") else { return nil }
            guard let payload = Data(hex: line[..<space]) else { return nil }
            return RecordedMessage(topic: String(line[line.index(after: space)...]), payload: payload, qos: qos)
        }
    }
}
