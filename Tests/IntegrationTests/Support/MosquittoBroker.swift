import Foundation

/// A real Mosquitto broker on a free loopback port, with persistence in the sandbox.
///
/// `restart()` brings it back on the same port with the same persistence file, so persistent sessions and
/// their queued QoS 1 messages survive, as they would for a production broker. The broker runs as root
/// (`user root`) because otherwise it drops privileges and cannot write its persistence file.
final class MosquittoBroker {
    static let executable = "/usr/sbin/mosquitto"

    let name: String
    let port: Int
    let directory: URL
    let configFile: URL
    let logFile: URL
    private let outputFile: URL
    private let sandbox: Sandbox
    private var child: ChildProcess?

    /// - Parameters:
    ///   - listenerOptions: lines placed right after the `listener` line (TLS settings for that listener).
    ///   - extraConfig: further global lines (`password_file ...`).
    init(
        _ name: String,
        in sandbox: Sandbox,
        allowAnonymous: Bool = true,
        listenerOptions: [String] = [],
        extraConfig: [String] = []
    ) throws {
        self.name = name
        self.sandbox = sandbox
        port = try FreePort.next()
        directory = try sandbox.makeDirectory("broker-\(name)")
        configFile = directory.appendingPathComponent("mosquitto.conf")
        logFile = directory.appendingPathComponent("mosquitto.log")
        outputFile = directory.appendingPathComponent("mosquitto.out")

        let lines =
            ["listener \(port) 127.0.0.1"] + listenerOptions + [
                "allow_anonymous \(allowAnonymous)",
                "persistence true",
                "persistence_location \(directory.path)/",
                "user root",
                "max_queued_messages 0",
                "max_inflight_messages 0",
                "autosave_interval 1",
                "log_dest file \(logFile.path)",
                "log_type all",
                "connection_messages true",
                "log_timestamp_format %H:%M:%S",
            ] + extraConfig
        try (lines.joined(separator: "\n") + "\n").write(to: configFile, atomically: true, encoding: .utf8)
    }

    deinit {
        shutdown()
    }

    var isRunning: Bool { child?.isRunning ?? false }

    /// Starts the broker and waits until its port accepts TCP connections.
    func start(timeout: Duration = .seconds(10)) async throws {
        guard !isRunning else { return }
        let child = try ChildProcess(
            executable: Self.executable,
            arguments: ["-c", configFile.path],
            outputFile: outputFile
        )
        sandbox.track(child)
        self.child = child

        let deadline = ContinuousClock.now + timeout
        while !LoopbackAddress.acceptsConnections(port: port) {
            if !child.isRunning {
                throw HarnessError("broker \(name) exited (\(child.exit!)) before listening on \(port)\n\(diagnostics)")
            }
            if ContinuousClock.now >= deadline {
                throw HarnessError.timeout("broker \(name) to listen on \(port)", details: diagnostics)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// SIGTERM and wait: the broker saves its persistence file on the way out. Returns how it ended.
    @discardableResult
    func stop() async throws -> ProcessExit? {
        guard let child else { return nil }
        let exit = try await child.terminate()
        self.child = nil
        // The port must be free again before a restart binds it.
        while LoopbackAddress.acceptsConnections(port: port) {
            try await Task.sleep(for: .milliseconds(20))
        }
        return exit
    }

    /// SIGKILL: the broker loses what it did not autosave.
    func kill() {
        child?.kill()
        child = nil
    }

    /// Stops and starts again on the same port with the same persistence.
    func restart() async throws {
        try await stop()
        try await start()
    }

    /// Ends the broker if it still runs. Idempotent.
    func shutdown() {
        kill()
    }

    var logText: String { LogFile.text(logFile) }

    var diagnostics: String {
        LogFile.tail(outputFile, lines: 20) + "\n" + LogFile.tail(logFile, lines: 40)
    }
}
