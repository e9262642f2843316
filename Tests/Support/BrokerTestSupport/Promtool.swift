import Foundation

/// `promtool check metrics` (Debian's `prometheus` package, installed by scripts/setup): the judge of
/// the daemon's `/metrics` (STYLE.md habit 15).
public enum Promtool {
    /// The promtool on PATH, or nil when it is not installed.
    public static let path: String? = {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return directories.map { "\($0)/promtool" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// What `promtool check metrics` says about `exposition` (Prometheus text format): its exit and
    /// its output, one line per problem. `directory` holds the output file.
    public static func checkMetrics(_ exposition: String, in directory: URL) async throws -> (exit: ProcessExit, problems: String) {
        guard let path else { throw HarnessError("promtool is not installed (scripts/setup installs Debian's prometheus package)") }
        let output = directory.appendingPathComponent("promtool-\(UUID().uuidString.prefix(8)).out")
        let child = try ChildProcess(executable: path, arguments: ["check", "metrics"], outputFile: output, withInput: true)
        defer { if child.isRunning { child.kill() } }
        try child.write(Data(exposition.utf8))
        child.closeInput()
        guard let exit = try await child.waitForExit(timeout: .seconds(60)) else {
            throw HarnessError.timeout(child.commandLine, details: LogFile.tail(output))
        }
        return (exit, LogFile.text(output))
    }

    /// Runs promtool with `arguments` (`check rules FILE`): its exit and output.
    public static func run(_ arguments: [String], in directory: URL) async throws -> (exit: ProcessExit, output: String) {
        guard let path else { throw HarnessError("promtool is not installed (scripts/setup installs Debian's prometheus package)") }
        let output = directory.appendingPathComponent("promtool-\(UUID().uuidString.prefix(8)).out")
        let child = try ChildProcess(executable: path, arguments: arguments, outputFile: output)
        defer { if child.isRunning { child.kill() } }
        guard let exit = try await child.waitForExit(timeout: .seconds(60)) else {
            throw HarnessError.timeout(child.commandLine, details: LogFile.tail(output))
        }
        return (exit, LogFile.text(output))
    }
}
