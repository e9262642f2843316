import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a child process ended.
public enum ProcessExit: Equatable, Sendable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    public var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "killed by signal \(signal)"
        }
    }
}

/// One process started by a test, with stdout and stderr appended to a log file.
///
/// The process is SIGKILLed when this object goes away while it still runs, so a failing test does not leave
/// brokers or daemons behind.
public final class ChildProcess {
    public let executable: String
    public let arguments: [String]
    public let outputFile: URL
    private let process = Process()
    private let input: Pipe?

    /// Ignore SIGPIPE once: writing to the stdin of a child that died must be an error, not the end of the run.
    private static let ignoreSIGPIPE: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// Starts `executable` with `arguments`; output is appended to `outputFile` (created when missing), stderr
    /// to `errorFile` when given, else to `outputFile` too.
    /// With `withInput`, the child's stdin is a pipe that `write(_:)` feeds and `closeInput()` closes.
    public init(
        executable: String,
        arguments: [String],
        outputFile: URL,
        errorFile: URL? = nil,
        environment: [String: String]? = nil,
        withInput: Bool = false
    ) throws {
        _ = Self.ignoreSIGPIPE
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw HarnessError("\(executable) is not an executable file")
        }
        self.executable = executable
        self.arguments = arguments
        self.outputFile = outputFile

        let output = try Self.appending(to: outputFile)
        defer { try? output.close() }  // the child has its own copy of the descriptor
        let errors = try errorFile.map(Self.appending(to:)) ?? output
        defer { try? errors.close() }

        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = output
        process.standardError = errors
        if withInput {
            let pipe = Pipe()
            process.standardInput = pipe
            input = pipe
        } else {
            process.standardInput = FileHandle.nullDevice
            input = nil
        }
        try process.runWithCleanSignalMask()
        if let input { try? input.fileHandleForReading.close() }
    }

    private static func appending(to url: URL) throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        return handle
    }

    deinit {
        if process.isRunning {
            kill()
        }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    public var commandLine: String { ([executable] + arguments).joined(separator: " ") }

    /// The exit, once the process has ended.
    public var exit: ProcessExit? {
        guard !process.isRunning else { return nil }
        return process.terminationReason == .exit
            ? .exited(process.terminationStatus) : .signaled(process.terminationStatus)
    }

    public func send(signal: Int32) {
        if process.isRunning {
            _ = deliver(signal, to: process.processIdentifier)
        }
    }

    /// Writes bytes to the child's stdin.
    public func write(_ data: Data) throws {
        guard let input else { throw HarnessError("\(executable) was started without an input pipe") }
        try input.fileHandleForWriting.write(contentsOf: data)
    }

    /// Closes the child's stdin so it sees end of file.
    public func closeInput() {
        try? input?.fileHandleForWriting.close()
    }

    /// Waits until the process has ended; nil when it still runs after `timeout`.
    public func waitForExit(timeout: Duration) async throws -> ProcessExit? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
        return exit
    }

    /// SIGTERM, then waits; SIGKILL when it has not ended within `grace`.
    @discardableResult
    public func terminate(grace: Duration = .seconds(15)) async throws -> ProcessExit {
        send(signal: SIGTERM)
        if let exit = try await waitForExit(timeout: grace) { return exit }
        kill()
        return exit ?? .signaled(SIGKILL)
    }

    /// SIGKILL and wait (blocking, briefly) until the kernel has reaped it. Safe from `defer` and `deinit`.
    public func kill() {
        send(signal: SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline {
            usleep(10_000)
        }
    }
}

/// `kill(2)` under a name that the `kill()` method does not shadow.
private func deliver(_ signal: Int32, to pid: Int32) -> Int32 {
    kill(pid, signal)
}
