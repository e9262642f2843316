import Foundation
import Logging
import BrokerTestSupport
import MQTT

/// A mosquitto on a free loopback port with the dynamic-security plugin, no anonymous access, and
/// an admin identity made by `mosquitto_ctrl dynsec init`.
final class DynsecBroker: Sendable {
    static let plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    let adminUser = "gateway-admin"
    let adminPassword = "admin-\(UUID().uuidString.prefix(8))"
    private let broker: LocalBroker

    var port: Int { broker.port }

    init() throws {
        let (user, password) = (adminUser, adminPassword)
        broker = try LocalBroker(allowAnonymous: false) { directory in
            let security = directory.appendingPathComponent("dynamic-security.json")
            let initialise = Process()
            initialise.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_ctrl")
            initialise.arguments = ["dynsec", "init", security.path, user, password]
            initialise.standardOutput = FileHandle.nullDevice
            try initialise.run()
            initialise.waitUntilExit()
            guard initialise.terminationStatus == 0 else { throw TestFailure("mosquitto_ctrl dynsec init failed") }
            return ["plugin \(Self.plugin)", "plugin_opt_config_file \(security.path)"]
        }
    }

    func start() async throws {
        try await broker.start()
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
}
