import Foundation
import Logging
import MQTT

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A mosquitto on a free loopback port with the dynamic-security plugin, no anonymous access, and
/// an admin identity made by `mosquitto_ctrl dynsec init`.
final class DynsecBroker: @unchecked Sendable {
    static let plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    let port: Int
    let adminUser = "gateway-admin"
    let adminPassword = "admin-\(UUID().uuidString.prefix(8))"
    private let directory: URL
    private var process: Process?

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dynsec-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        let security = directory.appendingPathComponent("dynamic-security.json")
        let initialise = Process()
        initialise.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_ctrl")
        initialise.arguments = ["dynsec", "init", security.path, adminUser, adminPassword]
        initialise.standardOutput = FileHandle.nullDevice
        try initialise.run()
        initialise.waitUntilExit()
        guard initialise.terminationStatus == 0 else { throw TestFailure("mosquitto_ctrl dynsec init failed") }
        let config = """
            listener \(port) 127.0.0.1
            allow_anonymous false
            user root
            plugin \(Self.plugin)
            plugin_opt_config_file \(security.path)
            """
        try config.write(to: directory.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    deinit {
        if let process { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(at: directory)
    }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", directory.appendingPathComponent("mosquitto.conf").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        for _ in 0..<100 {
            if Self.accepts(port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("mosquitto did not listen on \(port)")
    }

    /// A client of this broker (not started).
    func client(_ id: String, username: String?, password: String?, subscriptions: [String] = []) -> MQTTClient {
        var configuration = MQTTClientConfiguration(host: "127.0.0.1", port: port, clientID: id, cleanSession: true)
        configuration.username = username
        configuration.password = password
        configuration.subscriptions = subscriptions
        configuration.reconnectBaseMs = 100
        configuration.reconnectCapMs = 500
        return MQTTClient(configuration: configuration, logger: Logger(label: "dynsec-test"))
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
