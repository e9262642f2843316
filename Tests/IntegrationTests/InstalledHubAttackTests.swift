import BrokerTestSupport
import Foundation
import HTTPTestSupport
import MLFake
import ServiceFakes
import Testing

extension IntegrationSuite {
    /// Issue 12's attacks as an attacker would try them on an installed hub: the broker as
    /// `scripts/packaging/setup-broker` sets it up (one account per gateway connection, each bound to its
    /// client id, the provisioning identity, TLS), the daemon on the installed credentials with
    /// registration, voice and the admin API on, devices registered through the real saga with the
    /// passwords it hands out, a scripted ML service over gRPC, the REST services over HTTP. Every
    /// attack fails, and after each one an honest device's event is still acked `stored`.
    @Suite struct InstalledHubAttackTests {
        /// The installed hub with its daemon, recorders, services and registered devices.
        final class Hub {
            let sandbox: Sandbox
            let broker: HubBroker
            let upstream: MosquittoBroker
            let gateway: GatewayProcess
            let acks: TopicRecorder
            let responses: TopicRecorder
            let services: FakeServices
            let ml: FakeMLService
            let adminPort: Int
            /// Passwords of the devices registered so far.
            var passwords: [String: String] = [:]
            private var honestEvents = 0

            init(
                sandbox: Sandbox, broker: HubBroker, upstream: MosquittoBroker, gateway: GatewayProcess, acks: TopicRecorder,
                responses: TopicRecorder, services: FakeServices, ml: FakeMLService, adminPort: Int
            ) {
                self.sandbox = sandbox
                self.broker = broker
                self.upstream = upstream
                self.gateway = gateway
                self.acks = acks
                self.responses = responses
                self.services = services
                self.ml = ml
                self.adminPort = adminPort
            }

            static func start(in sandbox: Sandbox) async throws -> Hub {
                let broker = try await HubBroker.start(in: sandbox)
                try await broker.createObserver("observer", password: "observer-pw")
                let observer = ["-u", "observer", "-P", "observer-pw"]
                let acks = TopicRecorder("acks", brokerPort: broker.port, filters: ["device/+/ack"], in: sandbox, connectionOptions: observer)
                try await acks.start()
                let responses = TopicRecorder(
                    "responses", brokerPort: broker.port, filters: ["device/+/response"], in: sandbox, connectionOptions: observer)
                try await responses.start()
                let upstream = try MosquittoBroker("upstream", in: sandbox)
                try await upstream.start()
                let services = FakeServices()
                try await services.start()
                services.users.withLock {
                    $0["ada"] = .init(quota: 10, count: 0)
                    $0["u-2"] = .init(quota: 10, count: 0)
                }
                let ml = FakeMLService(name: "ml-installed")
                let mlPort = try await ml.start()
                let adminPort = try FreePort.next()
                let gateway = try GatewayProcess(
                    in: sandbox, devicePort: broker.port, upstreamPort: upstream.port,
                    overrides: [
                        "registration.enabled": true,
                        "registration.registryUrl": .string(services.baseURL),
                        "registration.billingUrl": .string(services.baseURL),
                        "users.baseUrl": .string(services.baseURL),
                        "devices.requireRegistration": true,
                        "ml.endpoints": .raw("[\"127.0.0.1:\(mlPort)\"]"),
                        "admin.port": .int(adminPort),
                        "limits.maxPayloadBytes": 1024,
                    ])
                // As the unit's EnvironmentFile= does: the installed accounts, client id and admin token.
                gateway.extraEnvironment = broker.secrets
                try await gateway.start()
                return Hub(
                    sandbox: sandbox, broker: broker, upstream: upstream, gateway: gateway, acks: acks, responses: responses,
                    services: services, ml: ml, adminPort: adminPort)
            }

            var token: String { broker.secrets["ADMIN_TOKEN"] ?? "" }

            /// Whether one of the daemon's connections to the hub broker was lost (its session taken over).
            var lostADeviceBrokerConnection: Bool {
                gateway.logText.split(separator: "\n").contains {
                    $0.contains("MQTT connection lost") && $0.contains("mqtt.broker=127.0.0.1:\(broker.port)")
                }
            }

            /// A registration through the provisioning identity (request and answer on its one
            /// bound connection); the `REGISTRATION_RESULT` payload.
            func register(_ device: String, requestId: String, user: String = "ada") async throws -> [String: Any] {
                let answer = try await broker.client("mosquitto_rr", [
                    "-h", "127.0.0.1", "-p", String(broker.port), "-i", "edge-provisioning",
                    "-u", broker.provisioning["PROVISIONING_USERNAME"] ?? "", "-P", broker.provisioning["PROVISIONING_PASSWORD"] ?? "",
                    "-t", "device/\(device)/register", "-e", "device/\(device)/response", "-W", "20",
                    "-m", #"{"requestId":"\#(requestId)","userId":"\#(user)","type":"sensor","premium":false}"#,
                ], timeout: .seconds(30))
                let payloads = answer.output.split(separator: "\n").compactMap { JSON.object(String($0))?["payload"] as? [String: Any] }
                guard let result = payloads.first else {
                    throw HarnessError("no REGISTRATION_RESULT for \(device): \(answer.output)\n\(gateway.logTail(lines: 30))")
                }
                if result["status"] as? String == "registered", let password = result["password"] as? String {
                    passwords[device] = password
                }
                return result
            }

            /// The proof that the hub still serves: a registered device's event acked `stored`.
            func honestEventIsStored(after attack: String) async throws {
                honestEvents += 1
                let eventID = "honest-\(honestEvents)"
                let sent = try await broker.publish(
                    device: "honest", password: passwords["honest"] ?? "", topic: "device/honest/event",
                    payload: #"{"eventId":"\#(eventID)","type":"t","timestamp":1}"#)
                #expect(sent.exit == .exited(0), "\(attack): \(sent.output)")
                try await acks.waitUntil("\(eventID) stored after \(attack)", timeout: .seconds(15)) {
                    $0.map(Ack.init).contains { $0.eventId == eventID && $0.status == "stored" }
                }
            }

            func audioDevice(_ id: String) async throws -> AudioDevice {
                let device = AudioDevice(id, brokerPort: broker.port, account: (id, passwords[id] ?? ""))
                try await device.connect()
                return device
            }

            /// The answer (`DIALOG_RESPONSE` or `ERROR`) to one session.
            func answer(_ session: UUID) async throws -> [String: Any] {
                let id = session.uuidString.lowercased()
                func isAnswer(_ message: RecordedMessage) -> Bool {
                    guard let json = message.json, let type = json["type"] as? String else { return false }
                    return (type == "DIALOG_RESPONSE" || type == "ERROR") && (json["payload"] as? [String: Any])?["session"] as? String == id
                }
                let messages = try await responses.waitUntil("the answer to \(id)", timeout: .seconds(20)) { $0.contains(where: isAnswer) }
                return try #require(messages.first(where: isAnswer)?.json)
            }
        }

        @Test func everyAttackOfTheTrustBoundaryIssueFailsOnAnInstalledHub() async throws {
            try await withSandbox { sandbox in
                let hub = try await Hub.start(in: sandbox)
                for (device, user) in [("honest", "ada"), ("rogue", "u-2"), ("speaker", "ada")] {
                    let result = try await hub.register(device, requestId: "req-\(device)", user: user)
                    #expect(result["status"] as? String == "registered", "\(device): \(result)")
                }
                try await hub.honestEventIsStored(after: "registration")

                // 1. Client-id takeover: a registered device logs in with each of the gateway's client ids.
                for clientID in ["edge-gateway", "edge-gateway-dialog", "edge-gateway-registration", "edge-gateway-dynsec", "edge-provisioning"] {
                    let attack = try await hub.broker.client("mosquitto_sub", [
                        "-h", "127.0.0.1", "-p", String(hub.broker.port), "-V", "311", "-i", clientID, "-c",
                        "-u", "rogue", "-P", hub.passwords["rogue"] ?? "", "-q", "1", "-v", "-t", "device/+/event", "-W", "3",
                    ])
                    #expect(attack.exit != .exited(0) && attack.output.lowercased().contains("not authori"), "\(clientID): \(attack.output)")
                    #expect(!attack.output.contains("device/honest/event"))
                }
                #expect(!hub.lostADeviceBrokerConnection, "no gateway session was taken over: \(hub.gateway.logTail())")
                try await hub.honestEventIsStored(after: "client-id takeover")

                // 2. Registration of reserved names, through the provisioning identity and the admin API.
                for reserved in ["edge-gateway", "edge-provisioning", "edge-gateway-dynsec", "edge-gateway-mic", "hub-test"] {
                    let result = try await hub.register(reserved, requestId: "req-reserved-\(reserved)")
                    #expect(result["status"] as? String == "rejected" && result["reason"] as? String == "reserved device id", "\(reserved): \(result)")
                    #expect(result["password"] == nil)
                }
                let admin = AdminClient(port: hub.adminPort, token: hub.token)
                let viaAPI = try await admin.post(
                    "/api/devices", json: #"{"deviceId":"edge-gateway","requestId":"req-api","userId":"ada","type":"sensor","premium":false}"#)
                #expect(viaAPI.status == 400 && viaAPI.text.contains("reserved device id"), "\(viaAPI.status) \(viaAPI.text)")
                // The gateway's own accounts were not reset: it still registers a device, whose event is stored.
                #expect(try await hub.register("late-1", requestId: "req-late-1")["status"] as? String == "registered")
                let late = try await hub.broker.publish(
                    device: "late-1", password: hub.passwords["late-1"] ?? "", topic: "device/late-1/event",
                    payload: #"{"eventId":"late-e1","type":"t","timestamp":1}"#)
                #expect(late.exit == .exited(0), "\(late.output)")
                try await hub.acks.waitUntil("late-e1 stored") { $0.map(Ack.init).contains { $0.eventId == "late-e1" && $0.status == "stored" } }
                try await hub.honestEventIsStored(after: "reserved names")

                // 3. requestId replay: another device with rogue's requestId gets no credentials.
                let replay = try await hub.register("thief-1", requestId: "req-rogue", user: "u-2")
                #expect(replay["status"] as? String == "rejected" && replay["reason"] as? String == "requestId reused", "\(replay)")
                #expect(replay["password"] == nil && replay["username"] == nil, "\(replay)")
                try await hub.honestEventIsStored(after: "requestId replay")

                // 4. Speaking as someone else: rogue (registered to u-2) names ada.
                let rogue = try await hub.audioDevice("rogue")
                let frames = try TestSpeech.opusFrames(TestSpeech.read(TestSpeech.writeFile(in: sandbox)))
                let claimed = try await rogue.speak(frames: frames, userId: "ada")
                let refused = try await hub.answer(claimed)
                #expect((refused["payload"] as? [String: Any])?["code"] as? String == "user_mismatch", "\(refused)")
                // One connection per client id: the next step's publisher uses rogue's.
                await rogue.close()
                try await hub.honestEventIsStored(after: "someone else's userId")

                // 5. A rejection names the event: over the payload limit, eventId first.
                let pad = String(repeating: "x", count: 2000)
                let oversized = try await hub.broker.publish(
                    device: "rogue", password: hub.passwords["rogue"] ?? "", topic: "device/rogue/event",
                    payload: #"{"eventId":"too-big-1","type":"t","data":"\#(pad)"}"#)
                #expect(oversized.exit == .exited(0), "\(oversized.output)")
                let rejected = try await hub.acks.waitUntil("the oversized event's ack") { $0.map(Ack.init).contains { $0.eventId == "too-big-1" } }
                #expect(rejected.map(Ack.init).first { $0.eventId == "too-big-1" }?.reason == "payload too large")
                try await hub.honestEventIsStored(after: "oversized event")

                // 6. One frame numbered 0xFFFFFFF0 and an end at 4294967295: another device's dialog is answered.
                let session = UUID()
                let rogueAgain = try await hub.audioDevice("rogue")
                try rogueAgain.publish(AudioDevice.start(session: session))
                try rogueAgain.publish(AudioDevice.frame(session: session, sequence: 0xFFFF_FFF0, payload: frames[0]))
                try rogueAgain.publish(AudioDevice.end(session: session, lastSequence: Int(UInt32.max)))
                let speaker = try await hub.audioDevice("speaker")
                let honestSession = try await speaker.speak(frames: frames)
                #expect(try await hub.answer(honestSession)["type"] as? String == "DIALOG_RESPONSE")
                #expect(try await hub.answer(session)["type"] as? String == "DIALOG_RESPONSE")
                try await hub.honestEventIsStored(after: "sequence numbers at the top of the range")

                // 7. The admin API from a web page: a cross-site form post, a cross-site WebSocket,
                // DNS rebinding (even carrying the token, which a page would not have).
                let port = hub.adminPort
                let callsBefore = hub.services.recorded.count
                try await RawHTTPConnection.with(port: port) { connection in
                    let post = try await connection.request(
                        "POST", "/api/devices", host: "127.0.0.1:\(port)", headers: ["Origin: http://evil.example", "Content-Type: text/plain"],
                        body: #"{"deviceId":"evil-1","requestId":"req-evil","userId":"ada","type":"camera","premium":false}"#)
                    #expect(post.status == 403, "\(post.head)")
                }
                try await RawHTTPConnection.with(port: port) { connection in
                    let upgrade = try await connection.request(
                        "/live", host: "127.0.0.1:\(port)", headers: AdminAPITests.upgradeHeaders + ["Origin: http://evil.example"])
                    #expect(upgrade.status == 403, "\(upgrade.head)")
                }
                try await RawHTTPConnection.with(port: port) { connection in
                    let rebound = try await connection.request("/api/devices", host: "evil.example:\(port)", headers: ["Authorization: Bearer \(hub.token)"])
                    #expect(rebound.status == 421, "\(rebound.head)")
                }
                #expect(try await admin.get("/api/devices", token: .some(nil)).status == 401, "the installed hub has a token")
                #expect(hub.services.recorded.count == callsBefore, "nothing reached the saga: \(hub.services.recorded)")
                try await hub.honestEventIsStored(after: "the admin API from a web page")

                #expect(!hub.lostADeviceBrokerConnection, "\(hub.gateway.logTail())")
                await rogueAgain.close()
                await speaker.close()
                await hub.ml.stop()
                await hub.services.stop()
            }
        }
    }
}
