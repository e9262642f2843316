import BrokerTestSupport
import Foundation
import Logging
import MLFake
import MQTT
import ServiceFakes
import Testing

extension IntegrationSuite {
    /// Registration through the daemon: `device/{id}/register` -> saga over HTTP services on
    /// loopback and the device broker's dynamic-security plugin -> `REGISTRATION_RESULT`, a
    /// `DeviceRegistered` event upstream, and a device that can then use only its own topics.
    @Suite struct DeviceRegistrationTests {
        struct Bed {
            let bed: TestBed
            let services: FakeServices
            let responses: TopicRecorder

            /// Waits (within `timeout`) until the fake REST services have been called with `route`.
            func waitForCall(_ route: String, timeout: Duration = .seconds(20)) async throws {
                let deadline = ContinuousClock.now + timeout
                while !services.recorded.contains(route) {
                    guard ContinuousClock.now < deadline else {
                        throw HarnessError("no call \(route): \(services.recorded)\n\(bed.gateway.logTail(lines: 30))")
                    }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
        }

        func withRegistration(extra: GatewayConfig = [:], _ body: (Bed) async throws -> Void) async throws {
            try await withSandbox { sandbox in
                let services = FakeServices()
                try await services.start()
                let plugin = try await DynamicSecurity.prepare(in: try sandbox.makeDirectory("dynsec"))
                let settings: GatewayConfig = [
                    "registration.enabled": true,
                    "registration.adminUsername": .string(DynamicSecurity.adminUser),
                    "registration.adminPassword": .string(DynamicSecurity.adminPassword),
                    "registration.registryUrl": .string(services.baseURL),
                    "registration.billingUrl": .string(services.baseURL),
                    "users.baseUrl": .string(services.baseURL),
                    "registration.compensationBackoffMs": 10,
                    "registration.compensationAttempts": 2,
                ]
                let bed = try await TestBed.start(in: sandbox, overrides: settings.merging(extra), deviceBrokerConfig: plugin)
                let responses = TopicRecorder("responses", brokerPort: bed.deviceBroker.port, filters: ["device/+/response"], in: sandbox)
                try await responses.start()
                try await body(Bed(bed: bed, services: services, responses: responses))
                await services.stop()
            }
        }

        func register(_ bed: Bed, device: String, requestId: String, user: String = "ada", premium: Bool = true) async throws -> [String: Any] {
            let json = #"{"requestId":"\#(requestId)","userId":"\#(user)","type":"speaker","premium":\#(premium)}"#
            // A new answer: a repeated request id has older ones.
            let isAnswer = { (message: RecordedMessage) in
                message.topic == "device/\(device)/response" && (message.json?["payload"] as? [String: Any])?["requestId"] as? String == requestId
            }
            let before = bed.responses.messages.filter(isAnswer).count
            try await DeviceClient.publishOnce(
                topic: "device/\(device)/register", payload: Data(json.utf8), brokerPort: bed.bed.deviceBroker.port, in: bed.bed.sandbox.directory)
            let messages = try await bed.responses.waitUntil("REGISTRATION_RESULT for \(requestId)", timeout: .seconds(20)) { messages in
                messages.filter(isAnswer).count > before
            }
            let envelope = try #require(messages.last(where: isAnswer)?.json)
            #expect(envelope["type"] as? String == "REGISTRATION_RESULT")
            return try #require(envelope["payload"] as? [String: Any])
        }

        @Test func aRegisteredDeviceGetsCredentialsThatWorkOnlyForItsOwnTopics() async throws {
            try await withRegistration { bed in
                bed.services.users.withLock { $0["ada"] = .init(quota: 3, count: 0) }
                let result = try await register(bed, device: "hall-1", requestId: "req-1")
                #expect(result["status"] as? String == "registered", "\(result)\n\(bed.bed.gateway.logTail())")
                #expect(result["username"] as? String == "hall-1")
                let password = try #require(result["password"] as? String)
                #expect(bed.services.recorded == [
                    "GET /api/users/ada", "POST /api/devices", "POST /api/users/ada/devices", "POST /api/billing/ada/devices",
                ])

                // DeviceRegistered reaches the cloud, keyed by the user.
                let events = try await bed.bed.waitForUpstream(count: 1) { $0.type == "DeviceRegistered" }
                #expect(events.first { $0.type == "DeviceRegistered" }?.key == "ada")

                // The device, with its own account: its events are stored; another device's topic is refused by the broker.
                var configuration = MQTTClientConfiguration(host: "127.0.0.1", port: bed.bed.deviceBroker.port, clientID: "hall-1", cleanSession: true)
                configuration.username = "hall-1"
                configuration.password = password
                let device = MQTTClient(configuration: configuration, logger: Logger(label: "registered-device"))
                device.start()
                let deadline = ContinuousClock.now + .seconds(10)
                while !device.isConnected, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                #expect(device.isConnected)
                try device.publish(topic: "device/hall-1/event", payload: Array(#"{"eventId":"e1","type":"hello","timestamp":1}"#.utf8))
                try device.publish(topic: "device/hall-2/event", payload: Array(#"{"eventId":"forged","type":"hello","timestamp":1}"#.utf8))
                try await bed.bed.waitForAcks(count: 1) { $0.deviceId == "hall-1" && $0.eventId == "e1" }
                // The broker refuses it (and, answering with "not authorized", ends hall-1's connection); a
                // sentinel sent after the refusal is handled after anything the broker had passed on.
                try await Poll.until("the broker's refusal of the forged publish", details: { bed.bed.deviceBroker.diagnostics }) {
                    bed.bed.deviceBroker.logText.split(separator: "\n").contains {
                        $0.contains("Denied PUBLISH from hall-1 ") && $0.contains("'device/hall-2/event'")
                    }
                }
                try await bed.bed.settle(through: "hall-1")
                #expect(bed.bed.acks(for: "hall-2").isEmpty, "a device cannot publish as another device")
                await device.stop()

                // The same request id again: answered from the record, nothing done twice.
                let again = try await register(bed, device: "hall-1", requestId: "req-1")
                #expect(again["status"] as? String == "registered")
                #expect(again["password"] as? String == password)
                #expect(bed.services.recorded.count == 4)
            }
        }

        @Test func theAdminAPIRegistersDevicesAndRequireRegistrationRejectsTheOthers() async throws {
            let port = try FreePort.next()
            try await withRegistration(extra: ["devices.requireRegistration": true, "admin.port": .int(port), "admin.token": "op"]) { bed in
                bed.services.users.withLock { $0["ada"] = .init(quota: 5, count: 0) }
                let admin = AdminClient(port: port, token: "op")
                let porch = bed.bed.device("porch-1")

                // Not registered: stored nowhere, acked as rejected, counted.
                try await porch.publish([DeviceEvent(deviceId: "porch-1", seq: 0, eventId: "before")])
                let refused = try await bed.bed.waitForAcks(count: 1) { $0.deviceId == "porch-1" }
                #expect(refused.first?.status == "rejected")
                #expect(refused.first?.reason == "unregistered device")
                _ = try await admin.waitForMetric(#"gateway_mqtt_messages_rejected_total{reason="unregistered_device"}"#) { $0 == 1 }

                // POST /api/devices runs the saga and answers like REGISTRATION_RESULT.
                let created = try await admin.post(
                    "/api/devices", json: #"{"deviceId": "porch-1", "requestId": "req-admin", "userId": "ada", "type": "camera", "premium": false}"#)
                #expect(created.status == 201, "\(created.text)\n\(bed.bed.gateway.logTail())")
                let result = try #require(created.json as? [String: Any])
                #expect(result["status"] as? String == "registered")
                #expect(result["username"] as? String == "porch-1")
                #expect((result["password"] as? String)?.isEmpty == false)
                #expect(try await admin.post("/api/devices", json: #"{"deviceId": "x/y", "userId": "ada"}"#).status == 400)
                _ = try await admin.waitForMetric(#"gateway_admin_requests_rejected_total{reason="invalid_body"}"#) { $0 == 1 }
                #expect(try await admin.post("/api/devices", json: #"{"deviceId": "porch-2", "userId": "ada"}"#, token: "nope").status == 401)

                // Registered: its events are taken now.
                try await porch.publish([DeviceEvent(deviceId: "porch-1", seq: 1, eventId: "after")])
                let stored = try await bed.bed.waitForAcks(count: 1) { $0.deviceId == "porch-1" && $0.eventId == "after" }
                #expect(stored.first { $0.eventId == "after" }?.status == "stored")

                let devices = try #require(try await admin.get("/api/devices").json as? [[String: Any]])
                let entry = try #require(devices.first { $0["deviceId"] as? String == "porch-1" })
                #expect(entry["registered"] as? Bool == true)
                #expect(entry["userId"] as? String == "ada")
                #expect(entry["type"] as? String == "camera")
                #expect(entry["rejected"] as? Int == 1)
            }
        }

        @Test func aCompensationThatKeepsFailingIsShownInTheAdminAPIAndAsAMetric() async throws {
            let port = try FreePort.next()
            try await withRegistration(extra: ["admin.port": .int(port)]) { bed in
                bed.services.users.withLock { $0["ada"] = .init() }
                bed.services.fail("POST /api/billing", status: 402)
                bed.services.fail("DELETE /api/users", status: 500)
                let result = try await register(bed, device: "shed-1", requestId: "req-stuck")
                #expect(result["status"] as? String == "failed")

                let admin = AdminClient(port: port)
                let stuck = try #require(try await admin.get("/api/registrations").json as? [[String: Any]])
                let record = try #require(stuck.first { $0["requestId"] as? String == "req-stuck" }, "\(stuck)")
                #expect(record["deviceId"] as? String == "shed-1")
                #expect(record["state"] as? String == "needs-attention")
                #expect(record["compensationFailed"] as? [String] == ["addToUser"])
                _ = try await admin.waitForMetric("gateway_registration_needs_attention") { $0 == 1 }
                try await bed.bed.gateway.waitForLog("needs attention")
            }
        }

        @Test func aFailingStepIsCompensatedAndTheDeviceToldWhy() async throws {
            try await withRegistration { bed in
                bed.services.users.withLock { $0["ada"] = .init() }
                bed.services.fail("POST /api/billing", status: 402)
                let result = try await register(bed, device: "den-1", requestId: "req-2")
                #expect(result["status"] as? String == "failed")
                #expect((result["reason"] as? String)?.contains("402") == true, "\(result)")
                #expect(result["password"] == nil)
                #expect(bed.services.recorded.suffix(2) == ["DELETE /api/users/ada/devices/den-1", "DELETE /api/devices/r-1"])

                bed.services.users.withLock { $0["full"] = .init(quota: 1, count: 1) }
                let quota = try await register(bed, device: "den-2", requestId: "req-3", user: "full")
                #expect(quota["status"] as? String == "failed")
                #expect((quota["reason"] as? String)?.contains("quota") == true, "\(quota)")

                let bad = try await register(bed, device: "den-3", requestId: "no spaces allowed")
                #expect(bad["status"] as? String == "rejected")
            }
        }

        @Test func aRegistrationCutShortByKill9IsResumedAtTheNextStart() async throws {
            try await withRegistration { bed in
                bed.services.users.withLock { $0["ada"] = .init() }
                // The registry hangs: the saga sits in step 4 when the daemon is killed.
                bed.services.delay("POST /api/devices", by: .seconds(60))
                let json = #"{"requestId":"req-crash","userId":"ada","type":"speaker","premium":false}"#
                try await DeviceClient.publishOnce(
                    topic: "device/attic-1/register", payload: Data(json.utf8), brokerPort: bed.bed.deviceBroker.port, in: bed.bed.sandbox.directory)
                try await bed.waitForCall("POST /api/devices")
                #expect(bed.services.recorded == ["GET /api/users/ada", "POST /api/devices"])
                bed.bed.gateway.kill()
                bed.services.delay("POST /api/devices", by: nil)

                try await bed.bed.gateway.start()
                let messages = try await bed.responses.waitUntil("the resumed registration's result", timeout: .seconds(20)) { messages in
                    messages.contains { ($0.json?["payload"] as? [String: Any])?["requestId"] as? String == "req-crash" }
                }
                let result = try #require(messages.last?.json?["payload"] as? [String: Any])
                #expect(result["status"] as? String == "registered", "\(result)\n\(bed.bed.gateway.logTail())")
                // Step 4 ran again (idempotent, same Idempotency-Key); steps 1–3 were not repeated.
                #expect(bed.services.recorded == ["GET /api/users/ada", "POST /api/devices", "POST /api/devices", "POST /api/users/ada/devices"])
                #expect(bed.bed.gateway.currentRunLog.contains("resuming an unfinished registration"))
            }
        }

        @Test func aDialogWithoutAUserIdBelongsToTheUserTheDeviceIsRegisteredTo() async throws {
            let ml = FakeMLService(name: "ml")
            let port = try await ml.start()
            try await withRegistration(extra: ["ml.endpoints": .raw("[\"127.0.0.1:\(port)\"]")]) { bed in
                bed.services.users.withLock { $0["ada"] = .init() }
                let result = try await register(bed, device: "lamp-1", requestId: "req-lamp", premium: false)
                #expect(result["status"] as? String == "registered")

                let device = AudioDevice("lamp-1", brokerPort: bed.bed.deviceBroker.port)
                try await device.connect()
                let frames = try TestSpeech.opusFrames(TestSpeech.read(TestSpeech.writeFile(in: bed.bed.sandbox)))
                let session = try await device.speak(frames: frames)
                #expect(try await device.waitForAnswer(session) == "DIALOG_RESPONSE")
                #expect(ml.intents.withLock { $0.first?.request.userID } == "ada")
                let events = try await bed.bed.waitForUpstream(count: 1) { $0.type == "DialogCompleted" }
                #expect(events.first { $0.type == "DialogCompleted" }?.key == "ada")
                await device.close()
            }
            await ml.stop()
        }
    }
}
