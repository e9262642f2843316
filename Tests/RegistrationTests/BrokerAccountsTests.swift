import BrokerTestSupport
import Foundation
import GatewayCore
import Logging
import MQTT
import Registration
import Synchronization
import Testing

/// Broker accounts against a real mosquitto with the dynamic-security plugin.
@Suite(.serialized, .timeLimit(.minutes(2))) struct BrokerAccountsTests {
    /// What the admin (allowed to subscribe to everything) sees on `device/#`.
    final class Observer: Sendable {
        let client: MQTTClient
        let seen = Mutex<[String]>([])
        private let task = Mutex<Task<Void, Never>?>(nil)

        init(_ broker: DynsecBroker) {
            client = broker.client("observer", username: broker.adminUser, password: broker.adminPassword, subscriptions: ["device/#"])
        }

        func start() async throws {
            client.start()
            let reading = Task { [self] in
                for await batch in client.messages {
                    seen.withLock { $0 += batch.map { "\($0.topicString) \(String(decoding: $0.payload, as: UTF8.self))" } }
                }
            }
            task.withLock { $0 = reading }
            try await until("the observer to connect") { self.client.isConnected }
            try await Task.sleep(for: .milliseconds(200))
        }

        func stop() async {
            await client.stop()
            task.withLock { $0?.cancel() }
        }
    }

    static func until(_ what: String, seconds: Double = 10, _ condition: @Sendable () -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func until(_ what: String, _ condition: @Sendable () -> Bool) async throws { try await Self.until(what, condition) }

    /// Connects as `username`; returns the client once connected, or nil when the broker refuses.
    func connect(_ broker: DynsecBroker, as username: String, password: String) async throws -> MQTTClient? {
        let client = broker.client("as-\(username)-\(UUID().uuidString.prefix(4))", username: username, password: password)
        client.start()
        for await event in client.events {
            switch event {
            case .connected: return client
            case .connectFailed:
                await client.stop()
                return nil
            default: continue
            }
        }
        return nil
    }

    func withAccounts(_ body: (DynsecBroker, BrokerAccounts) async throws -> Void) async throws {
        let broker = try DynsecBroker()
        try await broker.start()
        let admin = broker.client(
            "edge-gateway-admin", username: broker.adminUser, password: broker.adminPassword, subscriptions: [BrokerAccounts.responseTopic])
        let accounts = BrokerAccounts(client: admin, logger: Logger(label: "accounts-test"))
        let running = Task { await accounts.run() }
        try await until("the admin connection") { accounts.isConnected }
        try await Task.sleep(for: .milliseconds(200))
        try await body(broker, accounts)
        await accounts.stop()
        await running.value
    }

    @Test func aDeviceAccountMayUseOnlyItsOwnTopics() async throws {
        try await withAccounts { broker, accounts in
            let device = DeviceID("sensor-1")!
            let password = BrokerAccounts.generatePassword()
            #expect(password.count == 32)
            try await accounts.ensureAccount(for: device, password: password)

            let observer = Observer(broker)
            try await observer.start()
            let client = try #require(try await connect(broker, as: "sensor-1", password: password))
            try client.publish(topic: "device/sensor-1/event", payload: Array("mine".utf8), qos: 1)
            try client.publish(topic: "device/sensor-2/event", payload: Array("not mine".utf8), qos: 1)
            try client.publish(topic: "device/sensor-1/ack", payload: Array("forged ack".utf8), qos: 1)
            try client.publish(topic: "device/sensor-1/register", payload: Array("register".utf8), qos: 1)
            try await until("the device's own event at the observer") { observer.seen.withLock { $0.contains("device/sensor-1/register register") } }
            try await Task.sleep(for: .milliseconds(300))
            let seen = observer.seen.withLock { $0 }
            #expect(seen.contains("device/sensor-1/event mine"))
            #expect(!seen.contains { $0.hasPrefix("device/sensor-2/") }, "publishing as another device is refused: \(seen)")
            #expect(!seen.contains { $0.hasPrefix("device/sensor-1/ack") }, "a device cannot forge its own ack: \(seen)")
            #expect(try await connect(broker, as: "sensor-1", password: "wrong") == nil)
            await client.stop()
            await observer.stop()
        }
    }

    @Test func creatingTwiceResetsThePasswordAndRemovingTwiceIsHarmless() async throws {
        try await withAccounts { broker, accounts in
            let device = DeviceID("dev-2")!
            try await accounts.ensureAccount(for: device, password: "first-password-123")
            try await accounts.ensureAccount(for: device, password: "second-password-456")
            #expect(try await connect(broker, as: "dev-2", password: "first-password-123") == nil)
            let client = try #require(try await connect(broker, as: "dev-2", password: "second-password-456"))
            await client.stop()

            try await accounts.removeAccount(for: device)
            try await accounts.removeAccount(for: device)
            #expect(try await connect(broker, as: "dev-2", password: "second-password-456") == nil, "a removed account cannot connect")
        }
    }

    @Test func withoutTheBrokerCommandsFailRetriably() async throws {
        let broker = try DynsecBroker()
        // Never started: the admin client cannot connect.
        let admin = broker.client("edge-gateway-admin", username: broker.adminUser, password: broker.adminPassword, subscriptions: [BrokerAccounts.responseTopic])
        let accounts = BrokerAccounts(client: admin, timeout: .milliseconds(300), logger: Logger(label: "accounts-test"))
        let running = Task { await accounts.run() }
        let error = await #expect(throws: BrokerAccountError.self) {
            try await accounts.ensureAccount(for: DeviceID("dev-3")!, password: "x")
        }
        #expect(error?.isRetriable == true, "\(String(describing: error))")
        await accounts.stop()
        await running.value
    }
}
