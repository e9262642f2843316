import BrokerTestSupport
import Foundation
import Synchronization

/// One `Tests/Wyoming/servers.py` (the `wyoming` reference package's server, in scripts/setup's venv) on a free
/// loopback port, for one test: `with` starts it, waits for its `READY` line and kills it afterwards.
struct WyomingPeer {
    let port: Int

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func with<T>(_ arguments: [String], _ body: (WyomingPeer) async throws -> T) async throws -> T {
        let python = repository.appendingPathComponent("var/venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw HarnessError("\(python) is missing: run scripts/setup (it makes the venv with the wyoming package)")
        }
        let port = try FreePort.next()
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
        let result = try await body(WyomingPeer(port: port))
        // Passed: nothing stays behind (scripts/test checks); a failure keeps the peer's log.
        process.kill()
        try? FileManager.default.removeItem(at: log)
        return result
    }
}

/// What a callback saw, for a test to read afterwards.
final class Recorder<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])

    func append(_ element: Element) { storage.withLock { $0.append(element) } }
    var elements: [Element] { storage.withLock { $0 } }
}

/// `count` chunks of `bytes` bytes of a 440 Hz tone (16 kHz, 16 bit mono), as a finished stream.
func tone(chunks count: Int, bytes: Int = 3200) -> AsyncStream<[UInt8]> {
    let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
    for index in 0..<count {
        var chunk: [UInt8] = []
        chunk.reserveCapacity(bytes)
        for sample in 0..<(bytes / 2) {
            let t = Double(index * bytes / 2 + sample) / 16_000
            let value = Int16(8000 * sin(2 * Double.pi * 440 * t))
            chunk.append(UInt8(truncatingIfNeeded: value))
            chunk.append(UInt8(truncatingIfNeeded: value >> 8))
        }
        continuation.yield(chunk)
    }
    continuation.finish()
    return stream
}
