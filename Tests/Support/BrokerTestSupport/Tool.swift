import Foundation

/// Runs a command-line tool (openssl, mosquitto_passwd) to completion and fails with its output when it fails.
public enum Tool {
    public static func run(_ executable: String, _ arguments: [String], in directory: URL) async throws {
        let output = directory.appendingPathComponent("tool-\(URL(fileURLWithPath: executable).lastPathComponent).log")
        let child = try ChildProcess(executable: executable, arguments: arguments, outputFile: output)
        defer { if child.isRunning { child.kill() } }
        guard let exit = try await child.waitForExit(timeout: .seconds(60)) else {
            throw HarnessError.timeout(child.commandLine, details: LogFile.tail(output))
        }
        guard exit == .exited(0) else {
            throw HarnessError("\(child.commandLine) ended with \(exit)\n\(LogFile.tail(output))")
        }
    }

    /// Runs the tool to completion and answers what it printed (stdout and stderr).
    public static func output(_ executable: String, _ arguments: [String], in directory: URL) async throws -> String {
        try await run(executable, arguments, in: directory)
        return LogFile.text(directory.appendingPathComponent("tool-\(URL(fileURLWithPath: executable).lastPathComponent).log"))
    }
}
