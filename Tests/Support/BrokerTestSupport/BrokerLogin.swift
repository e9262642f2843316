import Foundation
import Logging
import MQTT

/// "Can this username and password log in?" asked of a broker with a real client: the one login
/// probe of the tests (broker accounts, registration attacks).
public enum BrokerLogin {
    /// Connects to 127.0.0.1:`port` as `username` (client id: `clientID`, else the username, as a
    /// device account must); returns the started client once connected, or nil (the client stopped)
    /// when the broker refuses the CONNECT. A broker that never answers counts as a refusal after the
    /// client's connect timeout.
    public static func client(
        port: Int, username: String, password: String, clientID: String? = nil, subscriptions: [String] = []
    ) async -> MQTTClient? {
        var configuration = MQTTClientConfiguration(host: "127.0.0.1", port: port, clientID: clientID ?? username, cleanSession: true)
        configuration.username = username
        configuration.password = password
        configuration.subscriptions = subscriptions
        configuration.reconnectBaseMs = 100
        configuration.reconnectCapMs = 500
        let client = MQTTClient(configuration: configuration, logger: Logger(label: "login-probe"))
        client.start()
        events: for await event in client.events {
            switch event {
            case .connected: return client
            case .connectFailed: break events
            default: continue
            }
        }
        await client.stop()
        return nil
    }

    /// Whether `username`/`password` (with `clientID`, else the username) may log in; the probe's
    /// connection is closed again.
    public static func succeeds(port: Int, username: String, password: String, clientID: String? = nil) async -> Bool {
        guard let client = await client(port: port, username: username, password: password, clientID: clientID) else { return false }
        await client.stop()
        return true
    }
}
