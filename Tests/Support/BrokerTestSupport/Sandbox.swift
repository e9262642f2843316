import Foundation

/// A scratch directory for one test plus every process the test starts in it.
///
/// `withSandbox` tears it down whatever happens: processes that still run are SIGKILLed and the directory is
/// removed. It is kept (and its path printed) when the test body throws, or for every test when the
/// environment variable `IT_KEEP_TMP` is set, so logs can be read after a failure.
public final class Sandbox {
    public let directory: URL
    private var children: [ChildProcess] = []
    /// Directories outside ``directory`` that go with it (``makeShortDirectory()``).
    private var shortDirectories: [URL] = []

    public init(name: String) throws {
        let safeName = String(name.map { $0.isLetter || $0.isNumber ? $0 : "-" }.prefix(60))
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("edge-gateway-it", isDirectory: true)
            .appendingPathComponent("\(safeName)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// A path inside the sandbox (nothing is created).
    public func url(_ name: String) -> URL {
        directory.appendingPathComponent(name)
    }

    /// A directory inside the sandbox, created when missing.
    public func makeDirectory(_ name: String) throws -> URL {
        let url = directory.appendingPathComponent(name, isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A directory of its own with a short path, removed (or kept) with the sandbox: a Unix socket's
    /// path holds at most 107 bytes, and the sandbox's own path is often longer.
    public func makeShortDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("eg-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        shortDirectories.append(url)
        return url
    }

    /// Remembers a process so `tearDown` ends it if its owner did not.
    public func track(_ child: ChildProcess) {
        children.append(child)
    }

    public func tearDown(keepFiles: Bool) {
        for child in children.reversed() where child.isRunning {
            child.kill()
        }
        children.removeAll()
        if keepFiles || ProcessInfo.processInfo.environment["IT_KEEP_TMP"] != nil {
            print("integration test files kept in \(([directory] + shortDirectories).map(\.path).joined(separator: ", "))")
        } else {
            for url in [directory] + shortDirectories { try? FileManager.default.removeItem(at: url) }
        }
    }
}

/// Runs `body` with a fresh sandbox and tears the sandbox down afterwards, also when `body` throws.
public func withSandbox<T>(
    _ name: String = #function,
    _ body: (Sandbox) async throws -> T
) async throws -> T {
    let sandbox = try Sandbox(name: name)
    do {
        let result = try await body(sandbox)
        sandbox.tearDown(keepFiles: false)
        return result
    } catch {
        sandbox.tearDown(keepFiles: true)
        throw error
    }
}
