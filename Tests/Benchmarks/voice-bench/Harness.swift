import Foundation
import Logging
import MQTT
import Synchronization

/// Processes the bench starts (mosquitto, the gateway) and stops on exit.
final class Processes: @unchecked Sendable {
    private var running: [Process] = []
    let directory: URL

    init() throws {
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("voice-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func launch(_ executable: String, _ arguments: [String], log: URL) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        running.append(process)
        return process
    }

    /// SIGTERM (the gateway's clean stop), or SIGKILL for `force` — children of a Swift process
    /// inherit its blocked SIGTERM and SIGINT, so mosquitto would not hear them.
    func stop(_ process: Process, force: Bool = false) {
        guard process.isRunning else { return }
        kill(process.processIdentifier, force ? SIGKILL : SIGTERM)
        while process.isRunning { usleep(10_000) }
    }

    func stopAll() {
        for process in running where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            while process.isRunning { usleep(10_000) }
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

func waitFor(_ what: String, timeout: Duration = .seconds(20), _ condition: @Sendable () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else { throw BenchError("timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// CPU seconds (user + system) and RSS of a process, from /proc.
enum ProcStat {
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func rssKB(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }
}

/// Percentiles of a sample, in milliseconds.
struct Sample {
    var values: [Double] = []

    mutating func add(_ duration: Duration) {
        values.append(Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }

    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((Double(sorted.count) * p).rounded(.up)) - 1
        return sorted[max(0, min(sorted.count - 1, rank))]
    }

    var mean: Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

    var summary: String {
        String(format: "mean %.2f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)", mean, percentile(0.5), percentile(0.99), values.max() ?? .nan, values.count)
    }
}

/// Median (min, max) of per-run figures.
func medianLine(_ values: [Double], format: String = "%.2f") -> String {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return "-" }
    let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    return String(format: "\(format) (min \(format), max \(format))", median, sorted.first!, sorted.last!)
}

/// A device speaking CONTRACTS.md §1 audio on its own MQTT connection, listening to its responses.
final class BenchDevice: Sendable {
    let id: String
    let client: MQTTClient
    /// Answers (`DIALOG_RESPONSE`/`ERROR`) by session id, with arrival time and type.
    let answers = Mutex<[String: (at: ContinuousClock.Instant, type: String)]>([:])
    private let listener = Mutex<Task<Void, Never>?>(nil)

    init(_ id: String, port: Int) {
        self.id = id
        var configuration = MQTTClientConfiguration(host: "127.0.0.1", port: port, clientID: "bench-\(id)", cleanSession: true)
        configuration.subscriptions = ["device/\(id)/response"]
        client = MQTTClient(configuration: configuration, logger: Logger(label: "bench-device"))
    }

    func connect() async throws {
        client.start()
        let task = Task { [self] in
                for await batch in client.messages {
                    let now = ContinuousClock.now
                    for message in batch {
                        guard let json = try? JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any],
                            let type = json["type"] as? String, type == "DIALOG_RESPONSE" || type == "ERROR",
                            let payload = json["payload"] as? [String: Any], let session = payload["session"] as? String
                        else { continue }
                        let detail = type == "ERROR" ? "ERROR \(payload["code"] ?? "?"): \(payload["message"] ?? "")" : type
                        answers.withLock { $0[session] = (now, detail) }
                    }
                }
        }
        listener.withLock { $0 = task }
        // Subscribed once a probe to our own response topic comes back.
        try await waitFor("device \(id) to connect") { client.isConnected }
        try await Task.sleep(for: .milliseconds(100))
    }

    func close() async {
        await client.stop()
        listener.withLock { $0?.cancel() }
    }

    func publish(_ bytes: [UInt8]) {
        // QoS 1 publishes queue in libmosquitto while connected; a failure here is a bench error.
        do {
            try client.publish(topic: "device/\(id)/audio", payload: bytes, qos: 1)
        } catch {
            FileHandle.standardError.write(Data("publish failed: \(error)\n".utf8))
        }
    }

    /// One session at real-time pace (one 20 ms frame every 20 ms). Returns the publish time of
    /// every frame and of the end message.
    func speak(session: UUID, frames: [[UInt8]], codec: String = "opus", pace: Duration = .milliseconds(20)) async throws
        -> (frames: [ContinuousClock.Instant], end: ContinuousClock.Instant)
    {
        let json = #"{"session":"\#(session.uuidString.lowercased())","codec":"\#(codec)","sampleRate":16000,"channels":1,"language":"en-US"}"#
        publish([0x01] + Array(json.utf8))
        var times: [ContinuousClock.Instant] = []
        let start = ContinuousClock.now
        for (index, frame) in frames.enumerated() {
            var bytes: [UInt8] = [0x02]
            withUnsafeBytes(of: session.uuid) { bytes.append(contentsOf: $0) }
            let sequence = UInt32(index)
            bytes += [UInt8(sequence >> 24), UInt8(sequence >> 16 & 0xFF), UInt8(sequence >> 8 & 0xFF), UInt8(sequence & 0xFF)]
            times.append(.now)
            publish(bytes + frame)
            try await Task.sleep(until: start + pace * (index + 1), clock: .continuous)
        }
        let end = ContinuousClock.now
        publish([0x03] + Array(#"{"session":"\#(session.uuidString.lowercased())","lastSeq":\#(frames.count - 1)}"#.utf8))
        return (times, end)
    }

    func waitForAnswer(_ session: UUID, timeout: Duration = .seconds(30)) async throws -> (at: ContinuousClock.Instant, type: String) {
        let key = session.uuidString.lowercased()
        let deadline = ContinuousClock.now + timeout
        while true {
            if let answer = answers.withLock({ $0[key] }) { return answer }
            guard ContinuousClock.now < deadline else { throw BenchError("no answer for session \(key) on \(id)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

/// A line on standard output, written at once (the bench runs for minutes; progress should show).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
