import Foundation

/// A real Mosquitto broker on a free loopback port: the one broker harness of the Swift tests (the
/// module tests of MQTT and Registration, and the integration tests).
///
/// It has a directory of its own (inside a `Sandbox` when given one, which also ends the process if
/// the test forgets to; else a temporary directory removed with the broker unless `IT_KEEP_TMP` is
/// set) holding its config, log
/// and persistence file. `restart()` brings it back on the same port with the same persistence file,
/// so persistent sessions and their queued QoS 1 messages survive, as they would for a production
/// broker. The broker runs as root (`user root`) because otherwise it drops privileges and cannot
/// write its persistence file. `stop()` is SIGTERM (the broker saves on the way out), `kill()`
/// SIGKILL (it loses what it did not autosave). Optional: listener options (TLS), a password file
/// (`MosquittoPasswordFile`, passed as an `extraConfig` line) and the dynamic-security plugin
/// (`dynamicSecurity`, its state file made on the first start and kept across restarts).
///
/// `@unchecked Sendable`: the process is only touched by the test that owns the broker, one call at a
/// time (start, stop, kill, deinit); the other stored properties are immutable.
public final class MosquittoBroker: @unchecked Sendable {
    public static let executable = "/usr/sbin/mosquitto"

    public let name: String
    public let port: Int
    public let directory: URL
    public let configFile: URL
    public let logFile: URL
    /// The dynamic-security plugin's state file, when the broker loads the plugin.
    public let dynamicSecurityFile: URL?
    private let dynamicSecurity: DynamicSecurity.Setup?
    private let outputFile: URL
    private let sandbox: Sandbox?
    private var child: ChildProcess?

    /// - Parameters:
    ///   - sandbox: where its directory is made and its process tracked; nil for a temporary
    ///     directory of its own, removed when the broker goes away.
    ///   - allowAnonymous: whether clients without a username may connect.
    ///   - listenerOptions: lines placed right after the `listener` line (TLS settings for that listener).
    ///   - dynamicSecurity: load the dynamic-security plugin with this admin account.
    ///   - unlimitedQueues: `max_queued_messages 0` and `max_inflight_messages 0`, so nothing queued
    ///     for an offline persistent session is dropped (the integration tests restart daemons and
    ///     brokers under load). False keeps mosquitto's defaults (1000 queued), as the broker-account
    ///     tests need: with `max_queued_messages 0`, mosquitto 2.0.11 loses the connection of a
    ///     client right after refusing (ACL) one of its QoS 1 publishes, so the client's next
    ///     messages never arrive.
    ///   - extraConfig: further global lines (`password_file ...`, a second listener).
    public init(
        _ name: String = "broker",
        in sandbox: Sandbox? = nil,
        allowAnonymous: Bool = true,
        listenerOptions: [String] = [],
        dynamicSecurity: DynamicSecurity.Setup? = nil,
        unlimitedQueues: Bool = true,
        extraConfig: [String] = []
    ) throws {
        self.name = name
        self.sandbox = sandbox
        self.dynamicSecurity = dynamicSecurity
        port = try FreePort.next()
        if let sandbox {
            directory = try sandbox.makeDirectory("broker-\(name)")
        } else {
            directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("mosquitto-\(name)-\(UUID().uuidString.prefix(8))", isDirectory: true)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        configFile = directory.appendingPathComponent("mosquitto.conf")
        logFile = directory.appendingPathComponent("mosquitto.log")
        outputFile = directory.appendingPathComponent("mosquitto.out")
        let pluginFile = directory.appendingPathComponent("dynamic-security.json")
        dynamicSecurityFile = dynamicSecurity == nil ? nil : pluginFile

        let lines =
            ["listener \(port) 127.0.0.1"] + listenerOptions + [
                "allow_anonymous \(allowAnonymous)",
                "persistence true",
                "persistence_location \(directory.path)/",
                "user root",
            ] + (unlimitedQueues ? ["max_queued_messages 0", "max_inflight_messages 0"] : []) + [
                "autosave_interval 1",
                "log_dest file \(logFile.path)",
                "log_type all",
                "connection_messages true",
                "log_timestamp_format %H:%M:%S",
            ] + (dynamicSecurityFile.map(DynamicSecurity.configLines(file:)) ?? []) + extraConfig
        try (lines.joined(separator: "\n") + "\n").write(to: configFile, atomically: true, encoding: .utf8)
    }

    deinit {
        shutdown()
        // Its own directory goes with it, unless IT_KEEP_TMP asks to keep test files (as `Sandbox`).
        if sandbox == nil {
            if ProcessInfo.processInfo.environment["IT_KEEP_TMP"] != nil {
                print("broker files kept in \(directory.path)")
            } else {
                try? FileManager.default.removeItem(at: directory)
            }
        }
    }

    public var isRunning: Bool { child?.isRunning ?? false }

    /// Starts the broker and waits until its port accepts TCP connections.
    public func start(timeout: Duration = .seconds(10)) async throws {
        guard !isRunning else { return }
        if let dynamicSecurity, let file = dynamicSecurityFile, !FileManager.default.fileExists(atPath: file.path) {
            try await DynamicSecurity.initialise(file: file, dynamicSecurity)
        }
        let child = try ChildProcess(
            executable: Self.executable,
            arguments: ["-c", configFile.path],
            outputFile: outputFile
        )
        sandbox?.track(child)
        self.child = child
        try await waitUntilListening(on: port, timeout: timeout)
    }

    /// Waits until `port` (this broker's, or another listener of its config) accepts TCP connections;
    /// fails at once when the broker exits.
    public func waitUntilListening(on port: Int, timeout: Duration = .seconds(10)) async throws {
        let child = self.child
        try await Poll.until("broker \(name) to listen on \(port)", timeout: timeout, details: { self.diagnostics }) {
            if let child, !child.isRunning {
                throw HarnessError("broker \(name) exited (\(child.exit!)) before listening on \(port)\n\(diagnostics)")
            }
            return LoopbackAddress.acceptsConnections(port: port)
        }
    }

    /// SIGTERM and wait: the broker saves its persistence file on the way out. Returns how it ended.
    @discardableResult
    public func stop() async throws -> ProcessExit? {
        guard let child else { return nil }
        let exit = try await child.terminate()
        self.child = nil
        // The port must be free again before a restart binds it.
        try await Poll.until("broker \(name) to release port \(port)") { !LoopbackAddress.acceptsConnections(port: port) }
        return exit
    }

    /// SIGKILL (and wait until the kernel has reaped it): the broker loses what it did not autosave.
    public func kill() {
        child?.kill()
        child = nil
    }

    /// Stops and starts again on the same port with the same persistence.
    public func restart() async throws {
        try await stop()
        try await start()
    }

    /// Ends the broker if it still runs. Idempotent.
    public func shutdown() {
        kill()
    }

    public var logText: String { LogFile.text(logFile) }

    public var diagnostics: String {
        LogFile.tail(outputFile, lines: 20) + "\n" + LogFile.tail(logFile, lines: 40)
    }
}
