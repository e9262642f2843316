import Foundation
import Logging
import BrokerTestSupport
import MQTT

/// A mosquitto on a free loopback port with the dynamic-security plugin, no anonymous access, and
/// an admin identity made by `mosquitto_ctrl dynsec init` (the harness's `MosquittoBroker` with
/// `dynamicSecurity`).
final class DynsecBroker: Sendable {
    let adminUser = "gateway-admin"
    let adminPassword = "admin-\(UUID().uuidString.prefix(8))"
    let broker: MosquittoBroker

    var port: Int { broker.port }

    init() throws {
        broker = try MosquittoBroker(
            "dynsec", allowAnonymous: false,
            dynamicSecurity: .init(adminUser: adminUser, adminPassword: adminPassword, anonymousMayDoEverything: false),
            unlimitedQueues: false)
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
