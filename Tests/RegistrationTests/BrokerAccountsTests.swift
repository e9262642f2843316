import DeviceLink
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
        let subscribed = Mutex(false)
        private let task = Mutex<Task<Void, Never>?>(nil)
        private let eventsTask = Mutex<Task<Void, Never>?>(nil)

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
            let events = Task { [self] in
                for await event in client.events {
                    if case .subscribed = event { subscribed.withLock { $0 = true } }
                }
            }
            task.withLock { $0 = reading }
            eventsTask.withLock { $0 = events }
            try await until("the observer's subscription") { self.client.isConnected && self.subscribed.withLock { $0 } }
        }

        func stop() async {
            await client.stop()
            task.withLock { $0?.cancel() }
            eventsTask.withLock { $0?.cancel() }
        }
    }

    static func until(_ what: String, seconds: Double = 10, _ condition: @Sendable () -> Bool) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while !condition() {
            guard ContinuousClock.now < deadline else { throw HarnessError("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func until(_ what: String, _ condition: @Sendable () -> Bool) async throws { try await Self.until(what, condition) }

    func withAccounts(_ body: (DynsecBroker, BrokerAccounts) async throws -> Void) async throws {
        let broker = try DynsecBroker()
        try await broker.start()
        let admin = broker.client(
            "edge-gateway-admin", username: broker.adminUser, password: broker.adminPassword, subscriptions: [BrokerAccounts.responseTopic])
        let accounts = BrokerAccounts(client: admin, logger: Logger(label: "accounts-test"))
        let running = Task { await accounts.run() }
        try await until("the admin connection and its subscription") { accounts.isReady }
        try await body(broker, accounts)
        await accounts.stop()
        await running.value
    }

    @Test func aDeviceAccountMayUseOnlyItsOwnTopics() async throws {
        try await withAccounts { broker, accounts in
            let device = DeviceID("sensor-1")!
            let password = BrokerAccounts.generatePassword()
            #expect(password.count == 32)
            try await accounts.createAccount(for: device, password: password, requestID: "req-1")

            let observer = Observer(broker)
            try await observer.start()
            let client = try #require(await BrokerLogin.client(port: broker.port, username: "sensor-1", password: password))
            try client.publish(topic: "device/sensor-1/event", payload: Array("mine".utf8), qos: 1)
            try client.publish(topic: "device/sensor-2/event", payload: Array("not mine".utf8), qos: 1)
            try client.publish(topic: "device/sensor-1/ack", payload: Array("forged ack".utf8), qos: 1)
            try client.publish(topic: "device/sensor-1/register", payload: Array("register".utf8), qos: 1)
            // One publisher's QoS 1 messages arrive in order: once the last one is there, anything the
            // broker let through before it is there too.
            try await until("the device's last message at the observer") { observer.seen.withLock { $0.contains("device/sensor-1/register register") } }
            let seen = observer.seen.withLock { $0 }
            #expect(seen.contains("device/sensor-1/event mine"))
            #expect(!seen.contains { $0.hasPrefix("device/sensor-2/") }, "publishing as another device is refused: \(seen)")
            #expect(!seen.contains { $0.hasPrefix("device/sensor-1/ack") }, "a device cannot forge its own ack: \(seen)")
            #expect(await BrokerLogin.succeeds(port: broker.port, username: "sensor-1", password: "wrong") == false)
            await client.stop()
            await observer.stop()
        }
    }

    @Test func aDeviceAccountConnectsOnlyWithClientIdEqualToItsDeviceId() async throws {
        try await withAccounts { broker, accounts in
            let password = BrokerAccounts.generatePassword()
            try await accounts.createAccount(for: DeviceID("sensor-7")!, password: password, requestID: "req-7")
            let own = try #require(await BrokerLogin.client(port: broker.port, username: "sensor-7", password: password, clientID: "sensor-7"))
            await own.stop()
            // The gateway's client id (a session takeover), another device's, or any other: refused at CONNECT.
            for foreign in ["edge-gateway-hub-1", "sensor-8", "sensor-7-x"] {
                #expect(await BrokerLogin.succeeds(port: broker.port, username: "sensor-7", password: password, clientID: foreign) == false, "client id \(foreign)")
            }
        }
    }

    /// Runs a mosquitto tool to its end; returns its standard output.
    static func tool(_ name: String, _ arguments: [String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/\(name)")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let ended = AsyncStream<Void> { continuation in process.terminationHandler = { _ in continuation.finish() } }
        try process.run()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        for await _ in ended {}
        return String(decoding: text, as: UTF8.self)
    }

    @Test func aDeviceAccountCannotReceiveAnotherDevicesTopics() async throws {
        try await withAccounts { broker, accounts in
            let password = BrokerAccounts.generatePassword()
            try await accounts.createAccount(for: DeviceID("sensor-a")!, password: password, requestID: "req-a")
            // A publisher allowed to send anywhere (what the gateway is to devices).
            let control = ["-h", "127.0.0.1", "-p", "\(broker.port)", "-u", broker.adminUser, "-P", broker.adminPassword, "dynsec"]
            for command in [
                ["createRole", "publisher"], ["addRoleACL", "publisher", "publishClientSend", "#", "allow"],
                ["createClient", "publisher", "-p", "publisher-pw"], ["addClientRole", "publisher", "publisher"],
            ] {
                _ = try await Self.tool("mosquitto_ctrl", control + command)
            }
            // Retained, so the device is sent them when it subscribes, in the order it subscribes.
            let publish = ["-h", "127.0.0.1", "-p", "\(broker.port)", "-u", "publisher", "-P", "publisher-pw", "-q", "1", "-r"]
            _ = try await Self.tool("mosquitto_pub", publish + ["-t", "device/sensor-b/response", "-m", "for b"])
            _ = try await Self.tool("mosquitto_pub", publish + ["-t", "device/sensor-b/event", "-m", "b's event"])
            _ = try await Self.tool("mosquitto_pub", publish + ["-t", "device/sensor-a/response", "-m", "for a"])
            // The device asks for another device's topics and everything, its own last; the first
            // message it is given ends it.
            let first = try await Self.tool(
                "mosquitto_sub",
                ["-h", "127.0.0.1", "-p", "\(broker.port)", "-i", "sensor-a", "-u", "sensor-a", "-P", password, "-v", "-C", "1", "-W", "15",
                 "-t", "device/sensor-b/response", "-t", "device/sensor-b/event", "-t", "device/+/response", "-t", "#",
                 "-t", "device/sensor-a/response"])
            #expect(first == "device/sensor-a/response for a\n")
        }
    }

    @Test func anAccountThatExistsIsNeverResetAndOnlyItsOwnRegistrationRemovesIt() async throws {
        try await withAccounts { broker, accounts in
            let device = DeviceID("dev-2")!
            try await accounts.createAccount(for: device, password: "first-password-123", requestID: "req-first")
            // Another registration: refused, the password is what it was.
            let refused = await #expect(throws: BrokerAccountError.self) {
                try await accounts.createAccount(for: device, password: "second-password-456", requestID: "req-second")
            }
            #expect(refused?.isRetriable == false)
            #expect(await BrokerLogin.succeeds(port: broker.port, username: "dev-2", password: "second-password-456") == false)
            // The same registration again (a resumed step): done, nothing changed.
            try await accounts.createAccount(for: device, password: "first-password-123", requestID: "req-first")
            let first = try #require(await BrokerLogin.client(port: broker.port, username: "dev-2", password: "first-password-123"))
            await first.stop()
            #expect(try await accounts.account("dev-2")?.clientID == "dev-2")

            // Compensation of the other registration leaves it alone.
            try await accounts.removeAccount(for: device, requestID: "req-second")
            let still = try #require(await BrokerLogin.client(port: broker.port, username: "dev-2", password: "first-password-123"))
            await still.stop()
            try await accounts.removeAccount(for: device, requestID: "req-first")
            try await accounts.removeAccount(for: device, requestID: "req-first")
            #expect(await BrokerLogin.succeeds(port: broker.port, username: "dev-2", password: "first-password-123") == false, "a removed account cannot connect")
            #expect(try await accounts.account("dev-2") == nil)
        }
    }

    @Test func theGatewaysOwnAccountCannotBeTakenOverOrRemoved() async throws {
        try await withAccounts { broker, accounts in
            let admin = try #require(DeviceID(broker.adminUser))
            #expect(try await accounts.account(broker.adminUser) != nil)
            await #expect(throws: BrokerAccountError.self) {
                try await accounts.createAccount(for: admin, password: "stolen-password-1", requestID: "req-evil")
            }
            try await accounts.removeAccount(for: admin, requestID: "req-evil")
            #expect(await BrokerLogin.succeeds(port: broker.port, username: broker.adminUser, password: "stolen-password-1", clientID: "probe-1") == false)
            let still = try #require(await BrokerLogin.client(port: broker.port, username: broker.adminUser, password: broker.adminPassword, clientID: "probe-2"))
            await still.stop()
        }
    }

    @Test func withoutTheBrokerCommandsFailRetriably() async throws {
        let broker = try DynsecBroker()
        // Never started: the admin client cannot connect.
        let admin = broker.client("edge-gateway-admin", username: broker.adminUser, password: broker.adminPassword, subscriptions: [BrokerAccounts.responseTopic])
        let accounts = BrokerAccounts(client: admin, timeout: .milliseconds(300), logger: Logger(label: "accounts-test"))
        let running = Task { await accounts.run() }
        let error = await #expect(throws: BrokerAccountError.self) {
            try await accounts.createAccount(for: DeviceID("dev-3")!, password: "x", requestID: "req-3")
        }
        #expect(error?.isRetriable == true, "\(String(describing: error))")
        await accounts.stop()
        await running.value
    }

    /// A command the broker never answers (a broker without the dynamic-security plugin: the control
    /// topic goes nowhere) ends as soon as its caller is cancelled, long before its timeout (two
    /// minutes here, over the test's limit), with a retriable error; the next command still works
    /// its way to its own timeout.
    @Test(.timeLimit(.minutes(1))) func aCancelledCommandEndsAtOnceInsteadOfWaitingForItsTimeout() async throws {
        let broker = try MosquittoBroker("no-dynsec", allowAnonymous: true, extraConfig: ["log_type all"])
        try await broker.start()
        defer { broker.shutdown() }
        var configuration = MQTTClientConfiguration(host: "127.0.0.1", port: broker.port, clientID: "edge-gateway-admin", cleanSession: true)
        configuration.subscriptions = [BrokerAccounts.responseTopic]
        let admin = MQTTClient(configuration: configuration, logger: Logger(label: "accounts-test"))
        let accounts = BrokerAccounts(client: admin, timeout: .seconds(120), logger: Logger(label: "accounts-test"))
        let running = Task { await accounts.run() }
        try await until("the admin connection and its subscription") { accounts.isReady }
        // The broker logs every PUBLISH it receives (`log_type all`): the sentinel that a command was sent.
        let received = "Received PUBLISH from edge-gateway-admin"
        @Sendable func sent() -> Int { broker.logText.components(separatedBy: received).count - 1 }
        let before = sent()

        let call = Task {
            try await accounts.createAccount(for: DeviceID("dev-cancel")!, password: "x", requestID: "req-cancel")
        }
        // Sent, and waiting for the answer that will not come.
        try await until("the first command in the broker's log") { sent() >= before + 1 }
        call.cancel()
        let result = await call.result
        guard case .failure(let error) = result else {
            Issue.record("a command without an answer succeeded")
            return
        }
        #expect((error as? BrokerAccountError)?.isRetriable == true, "\(error)")

        // The accounts object is still usable: a second command, with nothing cancelled, is sent too
        // (and cancelled the same way, so the test does not wait two minutes).
        let second = Task {
            try await accounts.createAccount(for: DeviceID("dev-cancel-2")!, password: "x", requestID: "req-cancel-2")
        }
        try await until("the second command in the broker's log") { sent() >= before + 2 }
        second.cancel()
        if case .success = await second.result { Issue.record("the second command succeeded without a plugin") }
        await accounts.stop()
        await running.value
    }

    /// Stopped before `run()` got to start its client (the registration service stopped right after
    /// start-up): `run()` returns at once instead of connecting for ever.
    @Test(.timeLimit(.minutes(1))) func stoppedBeforeItRunsTheAccountsClientNeverStarts() async throws {
        let broker = try DynsecBroker()
        let admin = broker.client("edge-gateway-admin", username: broker.adminUser, password: broker.adminPassword, subscriptions: [BrokerAccounts.responseTopic])
        let accounts = BrokerAccounts(client: admin, timeout: .milliseconds(300), logger: Logger(label: "accounts-test"))
        await accounts.stop()
        await accounts.run()
        #expect(!accounts.isConnected)
    }
}
