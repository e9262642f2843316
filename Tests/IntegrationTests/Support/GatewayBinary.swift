import BrokerTestSupport
import Foundation

/// Where the `edge-gateway` executable is, and the environment it runs in.
enum GatewayBinary {
    /// `EDGE_GATEWAY_BIN` when set, else the debug build of this package.
    static var path: String {
        if let path = ProcessInfo.processInfo.environment["EDGE_GATEWAY_BIN"], !path.isEmpty {
            return path
        }
        return packageRoot.appendingPathComponent(".build/debug/edge-gateway").path
    }

    /// Tests/IntegrationTests/Support/GatewayBinary.swift -> the package root, four levels up.
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// The test runner's environment without anything the daemon would read as configuration, so that only
    /// the config file a test writes decides (every key can be overridden by an environment variable).
    static var environment: [String: String] {
        let configPrefixes = ["HUB_", "MQTT_", "UPSTREAM_", "STORE_", "LIMITS_", "LOG_"]
        let systemdVariables: Set<String> = ["STATE_DIRECTORY", "JOURNAL_STREAM", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]
        return ProcessInfo.processInfo.environment.filter { key, _ in
            !systemdVariables.contains(key) && !configPrefixes.contains { key.hasPrefix($0) }
        }
    }

    /// Runs a one-shot command (`check-config`, `outbox stats`) to completion.
    static func run(
        _ arguments: [String], in directory: URL, environment extra: [String: String] = [:], timeout: Duration = .seconds(30)
    ) async throws -> CommandResult {
        let id = UUID().uuidString.prefix(8)
        let stdoutFile = directory.appendingPathComponent("cli-\(id).out")
        let stderrFile = directory.appendingPathComponent("cli-\(id).err")
        _ = FileManager.default.createFile(atPath: stdoutFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrFile.path, contents: nil)
        let stdout = try FileHandle(forWritingTo: stdoutFile)
        let stderr = try FileHandle(forWritingTo: stderrFile)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment.merging(extra) { $1 }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = stdout
        process.standardError = stderr
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw HarnessError("edge-gateway binary not found at \(path); build it or set EDGE_GATEWAY_BIN")
        }
        try process.runWithCleanSignalMask()
        try? stdout.close()
        try? stderr.close()

        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                process.terminate()
                throw HarnessError.timeout("edge-gateway \(arguments.joined(separator: " ")) to finish")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return CommandResult(
            arguments: arguments,
            exit: process.terminationReason == .exit
                ? .exited(process.terminationStatus) : .signaled(process.terminationStatus),
            stdout: LogFile.text(stdoutFile),
            stderr: LogFile.text(stderrFile)
        )
    }
}

/// What a one-shot command printed and how it ended.
struct CommandResult: Sendable, CustomStringConvertible {
    let arguments: [String]
    let exit: ProcessExit
    let stdout: String
    let stderr: String

    var succeeded: Bool { exit == .exited(0) }

    var description: String {
        "edge-gateway \(arguments.joined(separator: " ")): \(exit)\n--- stdout ---\n\(stdout)\n--- stderr ---\n\(stderr)"
    }
}
