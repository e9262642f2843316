import Foundation
import Synchronization

/// One `Tests/Wyoming/servers.py` (the `wyoming` reference package's server, in scripts/setup's venv) on a free
/// loopback port, for one test: `with` starts it, waits for its `READY` line and kills it afterwards. Arguments:
/// `--mode asr|intent|handle|tts|wake|all`, `--hostile MODE`, `--transcript TEXT`, `--stream`, … (see servers.py).
public struct WyomingPeer: Sendable {
    public let port: Int
    /// Where servers.py's output goes.
    public let log: URL

    /// The last `lines` of servers.py's output (for a failure's message).
    public func outputTail(lines: Int = 40) -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// The repository (this file is Tests/Support/BrokerTestSupport/WyomingPeer.swift).
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `port`: the port to listen on (e.g. one a previous peer had); nil: a free one.
    public static func with<T>(_ arguments: [String], port: Int? = nil, _ body: (WyomingPeer) async throws -> T) async throws -> T {
        let python = repository.appendingPathComponent("var/venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw HarnessError("\(python) is missing: run scripts/setup (it makes the venv with the wyoming package)")
        }
        let port = try port ?? FreePort.next()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("wyoming-peer-\(port)-\(UUID().uuidString).log")
        let process = try ChildProcess(
            executable: python,
            arguments: [repository.appendingPathComponent("Tests/Wyoming/servers.py").path, "--port", "\(port)"] + arguments,
            outputFile: log
        )
        defer { process.kill() }
        let text = { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        try await Poll.until("servers.py \(arguments) listening", details: text) {
            if let exit = process.exit { throw HarnessError("servers.py ended (\(exit)): \(text())") }
            return text().contains("READY \(port)")
        }
        let result = try await body(WyomingPeer(port: port, log: log))
        // Passed: nothing stays behind (scripts/test checks); a failure keeps the peer's log.
        process.kill()
        try? FileManager.default.removeItem(at: log)
        return result
    }
}
