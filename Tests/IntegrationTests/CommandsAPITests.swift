import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The operator's side of cloud commands (`/api/commands`, the status page's pending count)
    /// against the running daemon with real brokers: a command from the hub's own operator takes
    /// the cloud's path (stored, answered `queued` upstream, delivered while the device is online),
    /// a queued one can be cancelled (`rejected`, `cancelled` upstream), bad requests are refused.
    @Suite struct CommandsAPITests {
        @Test func theOperatorSendsListsAndCancelsCommandsAndTheCloudSeesEveryStatus() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port), "admin.token": "op-token"])
                let admin = AdminClient(port: port, token: "op-token")
                let upstream = try #require(bed.upstream)
                // The device said goodbye: commands wait for it.
                let lamp = bed.device("op-lamp")
                try await DeviceClient.publishOnce(
                    topic: "device/op-lamp/status", payload: Data(#"{"online": false}"#.utf8), brokerPort: bed.deviceBroker.port, in: lamp.directory,
                    retain: true)
                _ = try await StatusPageAPITests.waitForStatus(admin, "op-lamp known offline") { status in
                    let list = (status["devices"] as? [String: Any])?["list"] as? [[String: Any]]
                    return list?.first { $0["deviceId"] as? String == "op-lamp" }?["online"] as? Bool == false
                }

                let sent = try await admin.post("/api/commands", json: #"{"deviceId": "op-lamp", "commandId": "op-1", "name": "blink", "params": {"times": 2}}"#)
                #expect(sent.status == 202, "\(sent.text)")
                let queued = try #require(sent.json as? [String: Any])
                #expect(queued["status"] as? String == "queued" && queued["commandId"] as? String == "op-1" && queued["inFlight"] as? Bool == false)
                #expect((queued["params"] as? [String: Any])?["times"] as? Int == 2)
                let second = try await admin.post("/api/commands", json: #"{"deviceId": "op-lamp", "name": "beep"}"#)
                let secondID = try #require((second.json as? [String: Any])?["commandId"] as? String)
                #expect(second.status == 202 && secondID.hasPrefix("op-"), "\(second.text)")
                // The same id again is not stored again: answered as it stands.
                #expect(try await admin.post("/api/commands", json: #"{"deviceId": "op-lamp", "commandId": "op-1", "name": "blink"}"#).status == 200)

                let listed = try await admin.get("/api/commands?device=op-lamp")
                let rows = try #require(listed.json as? [[String: Any]])
                #expect(Set(rows.compactMap { $0["commandId"] as? String }) == ["op-1", secondID], "\(listed.text)")
                _ = try await StatusPageAPITests.waitForStatus(admin, "2 pending commands for op-lamp") { status in
                    let list = (status["devices"] as? [String: Any])?["list"] as? [[String: Any]]
                    return list?.first { $0["deviceId"] as? String == "op-lamp" }?["pendingCommands"] as? Int == 2
                }

                let cancelled = try await admin.delete("/api/commands/op-lamp/op-1")
                #expect(cancelled.status == 200, "\(cancelled.text)")
                let record = try #require(cancelled.json as? [String: Any])
                #expect(record["status"] as? String == "rejected" && record["message"] as? String == "cancelled")
                #expect(try await admin.delete("/api/commands/op-lamp/op-1").status == 409)
                #expect(try await admin.delete("/api/commands/op-lamp/never").status == 404)

                // Refused requests: the contract's reason, the detail in plain words.
                let bad = try await admin.post("/api/commands", json: #"{"deviceId": "op-lamp", "commandId": "op-9"}"#)
                #expect(bad.status == 400 && (bad.json as? [String: Any])?["error"] as? String == "invalid command", "\(bad.text)")
                #expect(((bad.json as? [String: Any])?["detail"] as? String)?.contains("name") == true, "\(bad.text)")
                #expect(try await admin.post("/api/commands", json: #"{"deviceId": "bad/id", "name": "x"}"#).status == 400)
                #expect(try await admin.post("/api/commands", json: "[1,2]").status == 400)
                // A body over 64 KiB is not read whole; nothing is queued for it.
                let huge = #"{"deviceId": "op-lamp", "commandId": "huge", "name": "x", "params": ""# + String(repeating: "a", count: 100_000) + #""}"#
                let refusedHuge = try await admin.post("/api/commands", json: huge)
                #expect(refusedHuge.status == 413 || refusedHuge.status == 400, "\(refusedHuge.status) \(refusedHuge.text)")
                #expect(try await admin.get("/api/commands?device=op-lamp").text.contains("\"huge\"") == false)
                #expect(try await admin.get("/api/commands?device=a%2Fb").status == 400)
                #expect(try await admin.get("/api/commands", token: .some(nil)).status == 401)

                // The CLI goes through the same API (address and token from the configuration).
                let config = bed.gateway.configFile.path
                let cliSend = try await GatewayBinary.run(
                    ["commands", "send", "op-lamp", "dim", "--params", #"{"level": 30}"#, "--id", "cli-1", "--config", config], in: sandbox.directory)
                #expect(cliSend.succeeded && cliSend.stdout == "queued cli-1 for op-lamp\n", "\(cliSend)")
                let cliList = try await GatewayBinary.run(["commands", "list", "--device", "op-lamp", "--config", config], in: sandbox.directory)
                #expect(cliList.succeeded && cliList.stdout.contains("cli-1") && cliList.stdout.contains("dim"), "\(cliList)")
                let cliCancel = try await GatewayBinary.run(["commands", "cancel", "op-lamp", "cli-1", "--config", config], in: sandbox.directory)
                #expect(cliCancel.succeeded && cliCancel.stdout == "cancelled cli-1 for op-lamp\n", "\(cliCancel)")
                let cliAgain = try await GatewayBinary.run(["commands", "cancel", "op-lamp", "cli-1", "--config", config], in: sandbox.directory)
                #expect(cliAgain.exit == .exited(1) && cliAgain.stderr.contains("already finished"), "\(cliAgain)")
                let cliEmpty = try await GatewayBinary.run(["commands", "list", "--device", "nobody", "--config", config], in: sandbox.directory)
                #expect(cliEmpty.succeeded && cliEmpty.stdout.isEmpty && cliEmpty.stderr.contains("no commands for nobody"), "\(cliEmpty)")

                // The cloud saw every change: queued twice, the repeat, the cancel, the refusal.
                let statusTopic = "hubs/hub-test/commands/op-lamp/status"
                let seen = try await upstream.waitUntil("the operator's commands upstream") { messages in
                    messages.filter { $0.topic == statusTopic }.count >= 5
                }.filter { $0.topic == statusTopic }.compactMap(\.json)
                let op1 = seen.filter { $0["commandId"] as? String == "op-1" }.compactMap { $0["status"] as? String }
                #expect(op1 == ["queued", "queued", "rejected"], "\(seen)")
                #expect(seen.contains { $0["commandId"] as? String == "op-9" && $0["message"] as? String == "invalid command" })

                // The device comes online: the one left is delivered.
                let commands = TopicRecorder("op-lamp-commands", brokerPort: bed.deviceBroker.port, filters: ["device/op-lamp/command"], in: sandbox)
                try await commands.start()
                try await DeviceClient.publishOnce(
                    topic: "device/op-lamp/status", payload: Data(#"{"online": true}"#.utf8), brokerPort: bed.deviceBroker.port, in: lamp.directory,
                    retain: true)
                let delivered = try await commands.waitUntil("the second command delivered") { !$0.isEmpty }
                // Presence in /api/devices and the gauge of online devices.
                let listedDevices = try #require(try await admin.get("/api/devices").json as? [[String: Any]])
                #expect(listedDevices.first { $0["deviceId"] as? String == "op-lamp" }?["online"] as? Bool == true, "\(listedDevices)")
                _ = try await admin.waitForMetric("gateway_devices_online") { $0 >= 1 }
                #expect(delivered.compactMap { $0.json?["commandId"] as? String } == [secondID])
                #expect(delivered.first?.json?["name"] as? String == "beep")
            }
        }
    }
}
