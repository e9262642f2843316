import BrokerTestSupport
import Foundation
import Logging
import MQTT
import ServiceFakes
import Testing

extension IntegrationSuite {
    /// Attacks on registration through the daemon (issue 12, "Registration that cannot be turned
    /// against the hub"): the dynamic-security broker, the real saga, fake REST services on
    /// loopback. Each attack fails, and afterwards an honest device's event is still acked `stored`
    /// and an honest device still registers.
    @Suite struct RegistrationAttackTests {
        typealias Bed = DeviceRegistrationTests.Bed
        let registration = DeviceRegistrationTests()

        /// What the device is told on `device/{id}/response` for `requestId` (every answer).
        func answers(_ bed: Bed, device: String, requestId: String) -> [[String: Any]] {
            bed.responses.messages.filter { $0.topic == "device/\(device)/response" }.compactMap { $0.json?["payload"] as? [String: Any] }
                .filter { $0["requestId"] as? String == requestId }
        }

        /// An honest device's event is acked `stored`.
        func honestEventIsStored(_ bed: Bed, _ eventId: String) async throws {
            try await bed.bed.device("honest-sensor").publish([DeviceEvent(deviceId: "honest-sensor", seq: 0, eventId: eventId)])
            let acks = try await bed.bed.waitForAcks(count: 1, timeout: .seconds(10)) { $0.deviceId == "honest-sensor" && $0.eventId == eventId }
            #expect(acks.first { $0.eventId == eventId }?.status == "stored")
        }

        @Test func registeringTheGatewaysOwnAdminAccountIsRejectedAndItsPasswordUnchanged() async throws {
            let port = try FreePort.next()
            try await registration.withRegistration(extra: ["admin.port": .int(port), "admin.token": "op"]) { bed in
                bed.services.users.withLock { $0["ada"] = .init(quota: 10, count: 0) }
                let viaMQTT = try await registration.register(bed, device: DynamicSecurity.adminUser, requestId: "req-evil-1")
                #expect(viaMQTT["status"] as? String == "rejected")
                #expect(viaMQTT["reason"] as? String == "reserved device id")
                #expect(viaMQTT["password"] == nil)

                let admin = AdminClient(port: port, token: "op")
                let viaAPI = try await admin.post(
                    "/api/devices", json: #"{"deviceId": "\#(DynamicSecurity.adminUser)", "requestId": "req-evil-2", "userId": "ada", "type": "x"}"#)
                #expect(viaAPI.status == 400, "\(viaAPI.text)")
                #expect((viaAPI.json as? [String: Any])?["reason"] as? String == "reserved device id")
                #expect(bed.services.recorded.isEmpty, "no saga started")

                // The gateway's account is as it was: it logs in with its password and registers another device.
                #expect(await BrokerLogin.succeeds(port: bed.bed.deviceBroker.port, username: DynamicSecurity.adminUser, password: DynamicSecurity.adminPassword, clientID: "admin-probe"))
                let honest = try await registration.register(bed, device: "honest-1", requestId: "req-honest-1")
                #expect(honest["status"] as? String == "registered", "\(honest)\n\(bed.bed.gateway.logTail())")
                _ = try await admin.waitForMetric(#"gateway_registration_rejected_total{reason="reserved_id"}"#) { $0 == 2 }
                try await honestEventIsStored(bed, "after-admin-attack")
            }
        }

        @Test func registeringTheHubIdOrAnInstalledIdentityIsRejected() async throws {
            try await withRegistrationOfAda(extra: ["mqtt.clientId": "gw-attacked", "registration.reservedIds": .raw("[lab-bench, spare-1]")]) { bed in
                let reserved = [TestBed.hubId, "edge-provisioning", "edge-gateway", "gw-attacked", "gw-attacked-dialog", "gw-attacked-dynsec", "lab-bench"]
                for (index, device) in reserved.enumerated() {
                    let result = try await registration.register(bed, device: device, requestId: "req-reserved-\(index)")
                    #expect(result["status"] as? String == "rejected", "\(device): \(result)")
                    #expect(result["reason"] as? String == "reserved device id", "\(device)")
                }
                #expect(bed.services.recorded.isEmpty, "no saga started")
                try await honestEventIsStored(bed, "after-hub-id-attack")
            }
        }

        @Test func registeringABrokerAccountTheRegistryDidNotCreateIsRejectedAndTheAccountUntouched() async throws {
            try await withRegistrationOfAda { bed in
                // An account made by hand on the broker (not by the registry).
                let control = [
                    "-h", "127.0.0.1", "-p", "\(bed.bed.deviceBroker.port)", "-u", DynamicSecurity.adminUser, "-P", DynamicSecurity.adminPassword,
                    "dynsec", "createClient", "pump-7", "-p", "pump-password-1",
                ]
                try await Tool.run("/usr/bin/mosquitto_ctrl", control, in: bed.bed.sandbox.directory)
                #expect(await BrokerLogin.succeeds(port: bed.bed.deviceBroker.port, username: "pump-7", password: "pump-password-1", clientID: "pump-7"))

                let result = try await registration.register(bed, device: "pump-7", requestId: "req-pump")
                #expect(result["status"] as? String == "rejected", "\(result)")
                #expect(result["reason"] as? String == "reserved device id")
                #expect(bed.services.recorded.isEmpty, "no saga started")
                #expect(await BrokerLogin.succeeds(port: bed.bed.deviceBroker.port, username: "pump-7", password: "pump-password-1", clientID: "pump-7"), "the account is unchanged")
                try await bed.bed.gateway.waitForLog("rejected a registration request")
                try await honestEventIsStored(bed, "after-foreign-account-attack")
            }
        }

        @Test func replayingAnotherDevicesRequestIdIsRejectedAndLeaksNoPassword() async throws {
            try await withRegistrationOfAda { bed in
                let c = try await registration.register(bed, device: "cam-c", requestId: "req-shared", premium: false)
                #expect(c["status"] as? String == "registered")
                let password = try #require(c["password"] as? String)
                let d = try await registration.register(bed, device: "cam-d", requestId: "req-shared", premium: false)
                #expect(d["status"] as? String == "rejected")
                #expect(d["reason"] as? String == "requestId reused")
                #expect(d["password"] == nil)
                let toD = bed.responses.messages.filter { $0.topic == "device/cam-d/response" }
                #expect(!toD.isEmpty)
                #expect(!toD.contains { $0.text.contains(password) }, "C's password never reaches D")
                // C's own repeat is still answered from the record.
                let again = try await registration.register(bed, device: "cam-c", requestId: "req-shared", premium: false)
                #expect(again["password"] as? String == password)
                try await honestEventIsStored(bed, "after-replay-attack")
            }
        }

        @Test func aFloodOfRegistrationsFromOneDeviceIsRateLimitedAndAnHonestDeviceStillRegisters() async throws {
            let port = try FreePort.next()
            try await registration.withRegistration(extra: ["admin.port": .int(port), "admin.token": "op"]) { bed in
                bed.services.users.withLock { $0["ada"] = .init(quota: 1000, count: 0) }
                let configuration = MQTTClientConfiguration(host: "127.0.0.1", port: bed.bed.deviceBroker.port, clientID: "flooder", cleanSession: true)
                let flooder = MQTTClient(configuration: configuration, logger: Logger(label: "flooder"))
                flooder.start()
                let deadline = ContinuousClock.now + .seconds(10)
                while !flooder.isConnected, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                for index in 0..<100 {
                    let json = #"{"requestId":"flood-\#(index)","userId":"ada","type":"speaker","premium":false}"#
                    try flooder.publish(topic: "device/flood-1/register", payload: Array(json.utf8), qos: 1)
                }
                let all = try await bed.responses.waitUntil("100 answers to the flood", timeout: .seconds(60)) { messages in
                    messages.filter { $0.topic == "device/flood-1/response" }.count >= 100
                }
                await flooder.stop()
                let answers = all.filter { $0.topic == "device/flood-1/response" }.compactMap { $0.json?["payload"] as? [String: Any] }
                let limited = answers.filter { $0["status"] as? String == "rejected" && $0["reason"] as? String == "rate limited" }
                #expect(limited.count >= 94, "at most 6 a minute get through: \(answers.count - limited.count)")
                let registered = answers.filter { $0["status"] as? String == "registered" }.count
                #expect(registered == 1, "\(answers.map { "\($0["status"] ?? "-") \($0["reason"] ?? "-")" })")

                let admin = AdminClient(port: port, token: "op")
                let overAPI = try await admin.post("/api/devices", json: #"{"deviceId": "flood-1", "requestId": "flood-api", "userId": "ada", "type": "x"}"#)
                #expect(overAPI.status == 429, "\(overAPI.text)")
                _ = try await admin.waitForMetric(#"gateway_registration_rejected_total{reason="rate_limited"}"#) { $0 >= 95 }
                try await bed.bed.gateway.waitForLog("rejected a registration request")

                let honest = try await registration.register(bed, device: "honest-2", requestId: "req-honest-2", premium: false)
                #expect(honest["status"] as? String == "registered", "\(honest)")
                try await honestEventIsStored(bed, "after-flood")
            }
        }

        @Test func aRegistrationWhoseCompensationHangsDoesNotHoldUpAnotherDevice() async throws {
            try await registration.withRegistration(extra: ["registration.timeoutMs": 60_000]) { bed in
                bed.services.users.withLock {
                    $0["ada"] = .init(quota: 10, count: 0)
                    $0["slow"] = .init(quota: 10, count: 0)
                }
                // Billing refuses the slow user's device; undoing "added to the user" hangs.
                bed.services.fail("POST /api/billing/slow", status: 402)
                bed.services.delay("DELETE /api/users/slow", by: .seconds(120))
                let json = #"{"requestId":"req-stuck-x","userId":"slow","type":"speaker","premium":true}"#
                try await DeviceClient.publishOnce(
                    topic: "device/stuck-x/register", payload: Data(json.utf8), brokerPort: bed.bed.deviceBroker.port, in: bed.bed.sandbox.directory)
                try await bed.waitForCall("DELETE /api/users/slow/devices/stuck-x")
                #expect(bed.services.recorded.contains("DELETE /api/users/slow/devices/stuck-x"))

                let other = try await registration.register(bed, device: "quick-y", requestId: "req-quick-y", premium: false)
                #expect(other["status"] as? String == "registered", "\(other)\n\(bed.bed.gateway.logTail())")
                #expect(answers(bed, device: "stuck-x", requestId: "req-stuck-x").isEmpty, "X is still compensating")
                try await honestEventIsStored(bed, "after-hanging-compensation")
            }
        }

        @Test func registrationsPastTheQueueLimitAreRejectedBusy() async throws {
            let port = try FreePort.next()
            let extra: GatewayConfig = [
                "registration.timeoutMs": 60_000, "registration.maxConcurrent": 1, "registration.queueLimit": 1,
                "admin.port": .int(port), "admin.token": "op",
            ]
            try await registration.withRegistration(extra: extra) { bed in
                bed.services.users.withLock { $0["slow"] = .init(quota: 10, count: 0) }
                // One registration hangs (its user lookup), and takes the only slot.
                bed.services.delay("GET /api/users/slow", by: .seconds(120))
                let json = #"{"requestId":"req-hang","userId":"slow","type":"speaker","premium":false}"#
                try await DeviceClient.publishOnce(
                    topic: "device/hang-1/register", payload: Data(json.utf8), brokerPort: bed.bed.deviceBroker.port, in: bed.bed.sandbox.directory)
                try await bed.waitForCall("GET /api/users/slow")
                // One may wait (its answer comes when the slot frees); the next is refused at once.
                let waiting = #"{"requestId":"req-wait","userId":"slow","type":"speaker","premium":false}"#
                try await DeviceClient.publishOnce(
                    topic: "device/wait-1/register", payload: Data(waiting.utf8), brokerPort: bed.bed.deviceBroker.port, in: bed.bed.sandbox.directory)
                let admin = AdminClient(port: port, token: "op")
                _ = try await admin.waitForMetric("gateway_registration_queue_waiting") { $0 == 1 }
                let refused = try await registration.register(bed, device: "late-1", requestId: "req-late")
                #expect(refused["status"] as? String == "rejected")
                #expect(refused["reason"] as? String == "busy")
                let overAPI = try await admin.post("/api/devices", json: #"{"deviceId": "late-2", "requestId": "req-late-2", "userId": "ada", "type": "x"}"#)
                #expect(overAPI.status == 503, "\(overAPI.text)")
                _ = try await admin.waitForMetric(#"gateway_registration_rejected_total{reason="busy"}"#) { $0 == 2 }
                try await honestEventIsStored(bed, "after-busy")
            }
        }

        @Test func aRepeatAfterThePasswordRetentionIsAnsweredWithoutThePassword() async throws {
            try await registration.withRegistration(extra: ["registration.passwordRetentionSeconds": 1, "registration.maxRequestsPerDevicePerMinute": 1000]) { bed in
                bed.services.users.withLock { $0["ada"] = .init(quota: 10, count: 0) }
                let first = try await registration.register(bed, device: "kept-1", requestId: "req-kept", premium: false)
                #expect(first["password"] is String)
                // Asked again until the maintenance (every half retention) has wiped it.
                var repeated: [String: Any] = first
                let deadline = ContinuousClock.now + .seconds(20)
                while repeated["password"] != nil, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(300))
                    repeated = try await registration.register(bed, device: "kept-1", requestId: "req-kept", premium: false)
                }
                #expect(repeated["status"] as? String == "registered")
                #expect(repeated["password"] == nil)
                #expect(repeated["username"] as? String == "kept-1", "\(repeated)")
                #expect(repeated["reason"] as? String == "credentials no longer kept")
            }
        }

        func withRegistrationOfAda(extra: GatewayConfig = [:], _ body: (Bed) async throws -> Void) async throws {
            try await registration.withRegistration(extra: extra) { bed in
                bed.services.users.withLock { $0["ada"] = .init(quota: 10, count: 0) }
                try await body(bed)
            }
        }
    }
}
