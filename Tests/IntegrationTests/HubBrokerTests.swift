import BrokerTestSupport
import Foundation
import ServiceFakes
import Testing

extension IntegrationSuite {
    /// The daemon against the hub broker as `scripts/packaging/setup-broker` sets it up, with the credentials
    /// it wrote (`secrets.env` as the daemon's environment, as the unit's `EnvironmentFile=` does):
    /// one broker account per connection, each bound to its client id, so a device cannot take the
    /// gateway's client id (and with it the gateway's persistent session).
    @Suite struct HubBrokerTests {
        static let gatewayAccounts = [
            "edge-gateway", "edge-gateway-dialog", "edge-gateway-registration", "edge-gateway-dynsec", "edge-gateway-mic", "edge-gateway-commands",
        ]

        /// Waits until the broker's log shows `what`.
        static func waitForBrokerLog(_ hub: HubBroker, _ what: String, timeout: Duration = .seconds(20)) async throws {
            let deadline = ContinuousClock.now + timeout
            while !hub.logText.contains(what) {
                if ContinuousClock.now >= deadline {
                    throw HarnessError.timeout("'\(what)' in the hub broker's log", details: hub.broker.diagnostics)
                }
                try await Task.sleep(for: .milliseconds(50))
            }
        }

        @Test func theDaemonLogsInWithTheInstalledAccountsAndADeviceCannotTakeItsClientId() async throws {
            try await withSandbox { sandbox in
                let hub = try await HubBroker.start(in: sandbox)
                #expect(hub.secrets["MQTT_CLIENT_ID"] == "edge-gateway")
                #expect(hub.secrets["MQTT_ACCOUNT_PER_CONNECTION"] == "true")
                #expect(hub.secrets["ADMIN_TOKEN"]?.count == 32)
                // Device accounts as the registration saga makes them, made before the daemon holds the
                // dynamic-security account's client id.
                try await hub.createDevice("dev-a", password: "pass-dev-a")
                try await hub.createDevice("dev-b", password: "pass-dev-b")
                try await hub.createObserver("observer", password: "observer-pw")
                let acks = TopicRecorder(
                    "acks", brokerPort: hub.port, filters: ["device/+/ack"], in: sandbox,
                    connectionOptions: ["-u", "observer", "-P", "observer-pw"])
                try await acks.start()
                let upstream = try MosquittoBroker("upstream", in: sandbox)
                try await upstream.start()
                let services = FakeServices()
                try await services.start()

                // Every connection on: registration (+ dynamic security) and the hub microphone (its
                // capture device is missing, which is retried; its MQTT connection is made regardless).
                let gateway = try GatewayProcess(
                    in: sandbox, devicePort: hub.port, upstreamPort: upstream.port,
                    overrides: [
                        "registration.enabled": true,
                        "registration.registryUrl": .string(services.baseURL),
                        "registration.billingUrl": .string(services.baseURL),
                        "users.baseUrl": .string(services.baseURL),
                        "audio.enabled": true,
                        "audio.device": "hw:9,0",
                    ])
                gateway.extraEnvironment = hub.secrets
                // A hub installed before presence (CONTRACTS.md §5): its ingress account may not
                // subscribe device/+/status. The events connection goes on without it (checked below:
                // dev-b's and dev-c's events are stored), with a warning.
                try await hub.control(["removeRoleACL", "edge-gateway-ingress", "subscribeLiteral", "device/+/status"])
                try await gateway.start()
                try await gateway.waitForLog("MQTT broker refused an optional subscription")
                for account in Self.gatewayAccounts {
                    // mosquitto: "New client connected from SOCKET:0 as ID (p2, cN, kN, u'USER')."
                    try await Self.waitForBrokerLog(hub, " as \(account) (")
                    #expect(hub.logText.contains(" as \(account) (") && hub.logText.contains("u'\(account)')"), "\(account)")
                    // Over the broker's Unix socket, as secrets.env on a new hub says (MQTT_UNIX_SOCKET).
                    #expect(hub.logText.contains("from \(hub.socket):0 as \(account) ("), "\(account) not over \(hub.socket)")
                }
                // ... and each subscription was granted by its account's role.
                for topics in ["device/+/event,device/+/telemetry", "device/+/audio", "device/+/register", "$CONTROL/dynamic-security/v1/response", "hub/hub-test/listen"] {
                    try await gateway.waitForLog("MQTT subscribed mqtt.topics=\(topics)")
                }
                #expect(!gateway.logText.contains("MQTT subscribe failed"), "\(gateway.logTail())")
                #expect(!hub.logText.contains("not authorised"), "\(hub.broker.diagnostics)")

                // The provisioning identity registers dev-c through the saga (request and answer on its one
                // connection); the saga makes the account with the dynamic-security account; dev-c's event is stored.
                services.users.withLock { $0["ada"] = .init(quota: 3, count: 0) }
                let registration = try await hub.client("mosquitto_rr", [
                    "-h", "127.0.0.1", "-p", String(hub.port), "-i", "edge-provisioning",
                    "-u", hub.provisioning["PROVISIONING_USERNAME"] ?? "", "-P", hub.provisioning["PROVISIONING_PASSWORD"] ?? "",
                    "-t", "device/dev-c/register", "-e", "device/dev-c/response", "-W", "20",
                    "-m", #"{"requestId":"req-c","userId":"ada","type":"sensor","premium":false}"#,
                ], timeout: .seconds(30))
                #expect(registration.exit == .exited(0), "\(registration.output)\n\(gateway.logTail())")
                let payloads = registration.output.split(separator: "\n").compactMap { JSON.object(String($0))?["payload"] as? [String: Any] }
                let result = try #require(payloads.first, "\(registration.output)")
                #expect(result["status"] as? String == "registered", "\(result)")
                let password = try #require(result["password"] as? String)
                let third = try await hub.publish(
                    device: "dev-c", password: password, topic: "device/dev-c/event", payload: #"{"eventId":"c-1","type":"t","timestamp":1}"#)
                #expect(third.exit == .exited(0), "\(third.output)")
                try await acks.waitUntil("c-1 stored") { $0.map(Ack.init).contains { $0.eventId == "c-1" && $0.status == "stored" } }

                // An honest device's event is stored and acked.
                let first = try await hub.publish(
                    device: "dev-b", password: "pass-dev-b", topic: "device/dev-b/event",
                    payload: #"{"eventId":"b-1","type":"t","timestamp":1}"#)
                #expect(first.exit == .exited(0), "\(first.output)")
                try await acks.waitUntil("b-1 stored") { $0.map(Ack.init).contains { $0.eventId == "b-1" && $0.status == "stored" } }

                // dev-a, with its own password, tries the gateway's client id (clean session off).
                let attack = try await hub.client("mosquitto_sub", [
                    "-h", "127.0.0.1", "-p", String(hub.port), "-V", "311", "-i", "edge-gateway", "-c",
                    "-u", "dev-a", "-P", "pass-dev-a", "-q", "1", "-v", "-t", "device/+/event", "-W", "5",
                ])
                #expect(attack.exit != .exited(0), "\(attack)")
                #expect(attack.output.lowercased().contains("not authori"), "refused at CONNECT: \(attack.output)")
                #expect(!attack.output.contains("device/dev-b/event"))
                #expect(!hub.logText.contains("Client edge-gateway already connected"), "the gateway's session was taken over")

                // The gateway still has its session: dev-b's next event (over TLS, trusting the hub CA) is acked.
                let second = try await hub.client("mosquitto_pub", [
                    "-h", "127.0.0.1", "-p", String(hub.tlsPort), "--cafile", hub.caFile.path, "-q", "1",
                    "-i", "dev-b", "-u", "dev-b", "-P", "pass-dev-b", "-t", "device/dev-b/event",
                    "-m", #"{"eventId":"b-2","type":"t","timestamp":2}"#,
                ])
                #expect(second.exit == .exited(0), "\(second.output)")
                try await acks.waitUntil("b-2 stored") { $0.map(Ack.init).contains { $0.eventId == "b-2" && $0.status == "stored" } }

                // dev-a cannot read dev-b's events with its own client id either.
                let peek = try await hub.client("mosquitto_sub", [
                    "-h", "127.0.0.1", "-p", String(hub.port), "-V", "311", "-i", "dev-a",
                    "-u", "dev-a", "-P", "pass-dev-a", "-q", "1", "-v", "-d", "-t", "device/dev-b/event", "-W", "2",
                ])
                #expect(peek.output.contains("Subscribed (mid: 1): 128"), "subscription refused: \(peek.output)")
                _ = try await hub.publish(
                    device: "dev-b", password: "pass-dev-b", topic: "device/dev-b/event",
                    payload: #"{"eventId":"b-3","type":"t","timestamp":3}"#)
                try await acks.waitUntil("b-3 stored") { $0.map(Ack.init).contains { $0.eventId == "b-3" && $0.status == "stored" } }
                #expect(!peek.output.contains("device/dev-b/event {"))
                #expect(!gateway.logText.contains("MQTT connection lost"), "\(gateway.logTail())")
                await services.stop()
            }
        }

        @Test func accountPerConnectionNeedsAUsername() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("gateway.yaml")
                try GatewayConfig(dictionaryLiteral: ("hub.id", "hub-check"), ("mqtt.accountPerConnection", true)).write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.exit != .exited(0), "\(result)")
                #expect((result.stdout + result.stderr).contains("mqtt.accountPerConnection: needs mqtt.username"), "\(result)")
            }
        }
    }
}
