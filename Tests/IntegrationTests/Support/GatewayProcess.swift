import BrokerTestSupport
import Foundation

/// The `edge-gateway` daemon under test, run as a real process with a config file in the sandbox.
///
/// The config is `defaults(...)` with the test's overrides on top. The client ids are fixed for the life of
/// this object, so a restart resumes the daemon's persistent session on the device broker, as in production.
final class GatewayProcess {
    let configFile: URL
    let logFile: URL
    let storePath: URL
    private(set) var config: GatewayConfig
    private let sandbox: Sandbox
    private var child: ChildProcess?
    private var logOffsetAtStart: UInt64 = 0
    /// Variables added to the daemon's environment on the next start (e.g. systemd's NOTIFY_SOCKET).
    var extraEnvironment: [String: String] = [:]

    /// - Parameters:
    ///   - devicePort: the device (LAN) broker.
    ///   - upstreamPort: the upstream (cloud) broker.
    ///   - overrides: dotted keys that replace the test defaults.
    init(in sandbox: Sandbox, devicePort: Int, upstreamPort: Int, overrides: GatewayConfig = [:]) throws {
        self.sandbox = sandbox
        let directory = try sandbox.makeDirectory("gateway")
        configFile = directory.appendingPathComponent("gateway.yaml")
        logFile = directory.appendingPathComponent("gateway.log")
        storePath = directory.appendingPathComponent("outbox.db")

        let client = "edge-gateway-it-\(UUID().uuidString.prefix(8))"
        let defaults: GatewayConfig = [
            "hub.id": "hub-test",
            // A free port each run; tests of the admin API set theirs.
            "admin.port": 0,
            "mqtt.host": "127.0.0.1",
            "mqtt.port": .int(devicePort),
            "mqtt.clientId": .string(client),
            "mqtt.reconnectBaseMs": 100,
            "mqtt.reconnectCapMs": 1000,
            "upstream.host": "127.0.0.1",
            "upstream.port": .int(upstreamPort),
            "upstream.clientId": .string("\(client)-upstream"),
            "upstream.reconnectBaseMs": 100,
            "upstream.reconnectCapMs": 1000,
            "upstream.connectTimeoutSeconds": 5,
            "store.path": .string(storePath.path),
            "log.format": "text",
            "log.level": "debug",
        ]
        config = defaults.merging(overrides)
        try config.write(to: configFile)
    }

    deinit {
        child?.kill()
    }

    var isRunning: Bool { child?.isRunning ?? false }

    /// The daemon's process id while it runs.
    var pid: Int32? { child?.isRunning == true ? child?.pid : nil }

    /// Launches `edge-gateway run --config FILE` and waits for `gateway ready` in what this run logged.
    /// - Parameter isReady: how to tell readiness; by default `gateway ready` in this run's log
    ///   (a test whose daemon logs elsewhere, e.g. to a journal socket, passes its own check).
    func start(timeout: Duration = .seconds(30), isReady: (@Sendable () -> Bool)? = nil) async throws {
        guard !isRunning else { throw HarnessError("gateway already running") }
        let binary = GatewayBinary.path
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw HarnessError("edge-gateway binary not found at \(binary); build it or set EDGE_GATEWAY_BIN")
        }
        logOffsetAtStart = LogFile.size(logFile)
        let child = try ChildProcess(
            executable: binary,
            arguments: ["run", "--config", configFile.path],
            outputFile: logFile,
            environment: GatewayBinary.environment.merging(extraEnvironment) { $1 }
        )
        sandbox.track(child)
        self.child = child

        let deadline = ContinuousClock.now + timeout
        while !(isReady?() ?? currentRunLog.contains("gateway ready")) {
            if let exit = child.exit {
                throw HarnessError("gateway exited (\(exit)) before it was ready\n\(logTail())")
            }
            if ContinuousClock.now >= deadline {
                throw HarnessError.timeout("gateway ready", details: logTail())
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// SIGTERM, wait for the exit and return it (SIGKILL after `grace`).
    @discardableResult
    func terminate(grace: Duration = .seconds(20)) async throws -> ProcessExit {
        guard let child else { throw HarnessError("gateway not started") }
        let exit = try await child.terminate(grace: grace)
        self.child = nil
        return exit
    }

    /// Waits for the daemon to exit on its own; nil if it is still running after `timeout`.
    func waitForExit(timeout: Duration) async throws -> ProcessExit? {
        guard let child else { throw HarnessError("gateway not started") }
        let exit = try await child.waitForExit(timeout: timeout)
        if exit != nil { self.child = nil }
        return exit
    }

    /// SIGKILL, as a crash or power cut of the process would.
    func kill() {
        child?.kill()
        child = nil
    }

    /// Rewrites the config file with `changes` (for the next start).
    func rewrite(_ changes: GatewayConfig) throws {
        config = config.merging(changes)
        try config.write(to: configFile)
    }

    /// Rewrites the config file with `changes` and sends SIGHUP (`systemctl reload`).
    func reload(_ changes: GatewayConfig) throws {
        config = config.merging(changes)
        try config.write(to: configFile)
        guard let child else { throw HarnessError("gateway not started") }
        child.send(signal: SIGHUP)
    }

    /// Terminates (when running) and starts again with the same config, store and client ids.
    func restart() async throws {
        if isRunning { try await terminate() }
        try await start()
    }

    /// Runs `edge-gateway ARGS --config FILE` against this gateway's config, e.g. `["outbox", "stats", "--json"]`.
    func runCLI(_ arguments: [String]) async throws -> CommandResult {
        try await GatewayBinary.run(arguments + ["--config", configFile.path], in: configFile.deletingLastPathComponent())
    }

    /// `outbox stats --json`, decoded.
    func outboxStats() async throws -> [String: Any] {
        let result = try await runCLI(["outbox", "stats", "--json"])
        guard result.succeeded else { throw HarnessError("outbox stats failed\n\(result)") }
        guard let object = JSON.object(result.stdout) else {
            throw HarnessError("outbox stats did not print one JSON object\n\(result)")
        }
        return object
    }

    /// Everything the daemon logged, across restarts.
    var logText: String { LogFile.text(logFile) }

    /// What the current (or last) run logged.
    var currentRunLog: String { LogFile.text(logFile, from: logOffsetAtStart) }

    func logTail(lines: Int = 60) -> String { LogFile.tail(logFile, lines: lines) }
}
