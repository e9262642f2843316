import BrokerTestSupport
import Foundation

/// The hub broker as an installation sets it up: `scripts/packaging/setup-broker --root DIR` makes the
/// dynamic-security state (the gateway's six accounts — `edge-gateway`, `-dialog`, `-registration`,
/// `-dynsec`, `-mic`, `-commands` — and `edge-provisioning`), the credentials and the TLS certificates in a scratch root, and
/// `config/mosquitto/edge-gateway.conf` (the snippet the installers put in `/etc/mosquitto/conf.d/`)
/// is loaded with its ports moved to free loopback ports and its paths into that root. Everything
/// else in the snippet (no anonymous clients, the plugin, persistence, limits, the TLS listener's
/// settings) is as shipped. It is a configuration, not a harness of its own: the broker runs through
/// `MosquittoBroker` (BrokerTestSupport) like every other. The plain listener is `MosquittoBroker`'s own on 127.0.0.1, which is what
/// setup-broker writes into `edge-gateway-plain.conf` on a new hub (`listener 1883 127.0.0.1`); the
/// Unix socket listener of `edge-gateway-socket.conf` is there too, at a short path (``socket``), and
/// the gateway, given ``secrets``, connects over it as on a new hub.
///
/// ```swift
/// let hub = try await HubBroker.start(in: sandbox)
/// try await hub.createDevice("dev-7", password: "pw")   // as the registration saga does
/// gateway.extraEnvironment = hub.secrets                  // as the unit's EnvironmentFile does
/// ```
final class HubBroker {
    let root: URL
    let broker: MosquittoBroker
    /// The TLS listener (the installed 8883), on 127.0.0.1.
    let tlsPort: Int
    /// The Unix socket the gateway connects to (the installed `/var/lib/mosquitto/edge-gateway/mqtt.sock`,
    /// moved to a short path of this run); `secrets["MQTT_UNIX_SOCKET"]` names it.
    let socket: String
    /// `/etc/edge-gateway/secrets.env` as written by setup-broker.
    let secrets: [String: String]
    /// `/etc/edge-gateway/provisioning.env`.
    let provisioning: [String: String]
    /// `/etc/edge-gateway/hub-ca.crt`, what devices trust.
    let caFile: URL
    private let sandbox: Sandbox

    var port: Int { broker.port }

    private init(
        root: URL, broker: MosquittoBroker, tlsPort: Int, socket: String, secrets: [String: String], provisioning: [String: String], sandbox: Sandbox
    ) {
        self.root = root
        self.broker = broker
        self.tlsPort = tlsPort
        self.socket = socket
        self.secrets = secrets
        self.provisioning = provisioning
        self.sandbox = sandbox
        caFile = root.appendingPathComponent("etc/edge-gateway/hub-ca.crt")
    }

    /// Runs setup-broker into a scratch root and starts mosquitto with the installed snippet.
    static func start(in sandbox: Sandbox) async throws -> HubBroker {
        let repo = GatewayBinary.packageRoot
        let root = try sandbox.makeDirectory("hub-root")
        let etc = root.appendingPathComponent("etc")
        try FileManager.default.createDirectory(at: etc, withIntermediateDirectories: true)
        // The users setup-broker looks up, mapped to whoever runs the tests (the broker runs as
        // `user root` here and must read the key and rewrite the state file).
        let uid = getuid(), gid = getgid()
        try "mosquitto:x:\(uid):\(gid)::/nonexistent:/usr/sbin/nologin\n".write(
            to: etc.appendingPathComponent("passwd"), atomically: true, encoding: .utf8)
        try "mosquitto:x:\(gid):\nedge-gateway:x:\(gid):\nroot:x:0:\n".write(
            to: etc.appendingPathComponent("group"), atomically: true, encoding: .utf8)
        try "hubtest\n".write(to: etc.appendingPathComponent("hostname"), atomically: true, encoding: .utf8)
        try await Tool.run(repo.appendingPathComponent("scripts/packaging/setup-broker").path, ["--root", root.path], in: sandbox.directory)

        let plain = try String(contentsOf: etc.appendingPathComponent("mosquitto/conf.d/edge-gateway-plain.conf"), encoding: .utf8)
        guard plain.split(separator: "\n").contains("listener 1883 127.0.0.1") else {
            throw HarnessError("setup-broker's plain listener on a new hub is not loopback only:\n\(plain)")
        }
        let tlsPort = try FreePort.next()
        let snippet = try String(contentsOf: repo.appendingPathComponent("config/mosquitto/edge-gateway.conf"), encoding: .utf8)
        var lines: [String] = []
        for line in snippet.split(separator: "\n").map(String.init) where !line.hasPrefix("#") && !line.isEmpty {
            switch line.split(separator: " ").first {
            case "listener":
                guard line == "listener 8883" else { throw HarnessError("unexpected listener in the snippet: \(line)") }
                lines.append("listener \(tlsPort) 127.0.0.1")
            case "certfile", "keyfile":
                lines.append(line.replacingOccurrences(of: " /etc/", with: " \(etc.path)/"))
            case "plugin":
                lines.append("plugin \(DynamicSecurity.plugin)")
            case "plugin_opt_config_file":
                lines.append("plugin_opt_config_file \(root.path)/var/lib/mosquitto/dynamic-security.json")
            default:
                lines.append(line)
            }
        }
        // The Unix socket listener setup-broker writes for the gateway (edge-gateway-socket.conf), in
        // a short directory that goes with the sandbox (a socket path holds 107 bytes), and
        // MQTT_UNIX_SOCKET in secrets.env pointing there, as it points at the installed one on a hub.
        let installedSocket = "/var/lib/mosquitto/edge-gateway/mqtt.sock"
        let socketSnippet = try String(contentsOf: etc.appendingPathComponent("mosquitto/conf.d/edge-gateway-socket.conf"), encoding: .utf8)
        guard socketSnippet.split(separator: "\n").contains("listener 0 \(installedSocket)") else {
            throw HarnessError("setup-broker wrote no socket listener for the gateway:\n\(socketSnippet)")
        }
        let socket = try sandbox.makeShortDirectory().appendingPathComponent("mqtt.sock").path
        lines.append("listener 0 \(socket)")
        var secrets = try envFile(etc.appendingPathComponent("edge-gateway/secrets.env"))
        guard secrets["MQTT_UNIX_SOCKET"] == installedSocket else {
            throw HarnessError("setup-broker's secrets.env does not point the gateway at its socket: \(secrets["MQTT_UNIX_SOCKET"] ?? "none")")
        }
        secrets["MQTT_UNIX_SOCKET"] = socket
        let broker = try MosquittoBroker("hub", in: sandbox, allowAnonymous: false, extraConfig: lines)
        try await broker.start()
        try await broker.waitUntilListening(on: tlsPort)
        return HubBroker(
            root: root, broker: broker, tlsPort: tlsPort, socket: socket,
            secrets: secrets,
            provisioning: try envFile(etc.appendingPathComponent("edge-gateway/provisioning.env")),
            sandbox: sandbox)
    }

    /// `KEY=value` lines of an env file (comments skipped).
    static func envFile(_ url: URL) throws -> [String: String] {
        var values: [String: String] = [:]
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n") where !line.hasPrefix("#") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    /// The gateway's password (all six of its accounts share it).
    var gatewayPassword: String { secrets["MQTT_PASSWORD"] ?? "" }

    /// `mosquitto_ctrl dynsec ...` as the gateway's dynamic-security account (with its client id: do
    /// not call it while a daemon with registration on holds that connection).
    func control(_ arguments: [String]) async throws {
        try await Tool.run("/usr/bin/mosquitto_ctrl", [
            "-h", "127.0.0.1", "-p", String(port), "-i", "edge-gateway-dynsec",
            "-u", secrets["REGISTRATION_ADMIN_USERNAME"] ?? "", "-P", secrets["REGISTRATION_ADMIN_PASSWORD"] ?? "", "dynsec",
        ] + arguments, in: sandbox.directory)
    }

    /// What a device's role lets it publish of its own topics (CONTRACTS.md §1, §5–§7; the saga's
    /// `BrokerAccounts.deviceSends`, and what `setup-broker --upgrade` gives older device roles).
    static let deviceSends = ["event", "telemetry", "status", "audio", "register", "command/result", "shadow/report", "shadow/get"]
    /// What it may subscribe to and receive of its own topics (`BrokerAccounts.deviceReceives`).
    static let deviceReceives = ["ack", "response", "command", "shadow/delta", "shadow"]

    /// A device account as the registration saga makes it: bound to client id = device id, allowed to
    /// publish only its own ``deviceSends`` and subscribe to and receive only its own ``deviceReceives``.
    func createDevice(_ id: String, password: String) async throws {
        try await control(["createClient", id, "-c", id, "-p", password])
        try await control(["createRole", "edge-device-\(id)"])
        for channel in Self.deviceSends {
            try await control(["addRoleACL", "edge-device-\(id)", "publishClientSend", "device/\(id)/\(channel)", "allow"])
        }
        for channel in Self.deviceReceives {
            try await control(["addRoleACL", "edge-device-\(id)", "subscribeLiteral", "device/\(id)/\(channel)", "allow"])
            try await control(["addRoleACL", "edge-device-\(id)", "publishClientReceive", "device/\(id)/\(channel)", "allow"])
        }
        try await control(["addClientRole", id, "edge-device-\(id)"])
    }

    /// A test-only account that may subscribe to and publish anything (for recorders, whose probes
    /// connect with their own client ids, so it is not bound to one).
    func createObserver(_ name: String, password: String) async throws {
        try await control(["createClient", name, "-p", password])
        try await control(["createRole", "test-\(name)"])
        for type in ["subscribePattern", "publishClientSend"] {
            try await control(["addRoleACL", "test-\(name)", type, "#", "allow"])
        }
        try await control(["addClientRole", name, "test-\(name)"])
    }

    /// Runs `mosquitto_pub`/`mosquitto_sub` against this broker to completion; returns its exit status
    /// and output (stdout and stderr).
    func client(_ tool: String, _ arguments: [String], timeout: Duration = .seconds(20)) async throws -> (exit: ProcessExit, output: String) {
        let output = sandbox.url("\(tool)-\(UUID().uuidString.prefix(8)).log")
        let child = try ChildProcess(executable: "/usr/bin/\(tool)", arguments: arguments, outputFile: output)
        defer { if child.isRunning { child.kill() } }
        guard let exit = try await child.waitForExit(timeout: timeout) else {
            throw HarnessError.timeout(child.commandLine, details: LogFile.tail(output))
        }
        return (exit, LogFile.text(output))
    }

    /// One QoS 1 message from a device account over the plain loopback listener.
    func publish(device: String, password: String, clientID: String? = nil, topic: String, payload: String) async throws -> (exit: ProcessExit, output: String) {
        try await client("mosquitto_pub", [
            "-h", "127.0.0.1", "-p", String(port), "-V", "311", "-q", "1", "-i", clientID ?? device,
            "-u", device, "-P", password, "-t", topic, "-m", payload,
        ])
    }

    var logText: String { broker.logText }
}
