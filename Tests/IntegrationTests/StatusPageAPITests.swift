import BrokerTestSupport
import Foundation
import HTTPTestSupport
import Testing

extension IntegrationSuite {
    /// `/api/status`, what the status page shows, from the running daemon: totals and rejects by
    /// reason counted by the real paths, the devices, and the links with their addresses, states,
    /// since when and why they are down.
    @Suite struct StatusPageAPITests {
        /// Polls `/api/status` until `condition` accepts it.
        static func waitForStatus(
            _ admin: AdminClient, _ what: String, timeout: Duration = .seconds(30), _ condition: ([String: Any]) -> Bool
        ) async throws -> [String: Any] {
            let deadline = ContinuousClock.now + timeout
            var last = "-"
            while ContinuousClock.now < deadline {
                let reply = try await admin.get("/api/status")
                if let status = reply.json as? [String: Any] {
                    if condition(status) { return status }
                    last = reply.text
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw HarnessError("/api/status never showed \(what) (last: \(last.prefix(2000)))")
        }

        @Test func theStatusShowsTrafficDevicesAndLinksAndWhyALinkIsDown() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port), "admin.token": "op-token"])
                let admin = AdminClient(port: port, token: "op-token")

                try await bed.device("st-a").publish((0..<3).map { DeviceEvent(deviceId: "st-a", seq: $0) })
                try await bed.device("st-b").publish((0..<2).map { DeviceEvent(deviceId: "st-b", seq: $0) })
                try await bed.device("st-b").publishOnce("{not json")
                _ = try await bed.waitForAcks(count: 6)
                _ = try await bed.waitForUpstream(count: 5)

                // Forwarded events leave the outbox up to store.removalDelayMs later (their removal shares a commit).
                let status = try await Self.waitForStatus(admin, "5 stored and forwarded, none left in the outbox") { status in
                    let traffic = status["traffic"] as? [String: Any]
                    let outbox = status["outbox"] as? [String: Any]
                    return traffic?["stored"] as? Int == 5 && traffic?["forwarded"] as? Int == 5 && outbox?["depth"] as? Int == 0
                }
                let traffic = try #require(status["traffic"] as? [String: Any])
                #expect(traffic["rejected"] as? Int == 1 && traffic["duplicate"] as? Int == 0 && traffic["received"] as? Int == 6)
                #expect((traffic["rejectedByReason"] as? [String: Int])?["invalid json"] == 1, "\(traffic)")
                #expect((traffic["droppedByReason"] as? [String: Int])?.values.reduce(0, +) == 0, "\(traffic)")
                let outbox = try #require(status["outbox"] as? [String: Any])
                #expect(outbox["depth"] as? Int == 0 && outbox["oldestAgeSeconds"] == nil, "\(outbox)")

                let devices = try #require(status["devices"] as? [String: Any])
                let list = try #require(devices["list"] as? [[String: Any]])
                let byId = Dictionary(uniqueKeysWithValues: list.compactMap { row in (row["deviceId"] as? String).map { ($0, row) } })
                #expect(byId["st-a"]?["events"] as? Int == 3 && byId["st-a"]?["online"] as? Bool == true)
                #expect(byId["st-b"]?["events"] as? Int == 3 && byId["st-b"]?["rejected"] as? Int == 1)
                #expect(devices["online"] as? Int == 2 && devices["onlineSeconds"] as? Int == 300)

                // Presence (CONTRACTS.md §5): an announcement on device/{id}/status beats recent traffic.
                let stA = bed.device("st-a")
                try await DeviceClient.publishOnce(
                    topic: "device/st-a/status", payload: Data(#"{"online": false}"#.utf8), brokerPort: bed.deviceBroker.port, in: stA.directory)
                _ = try await Self.waitForStatus(admin, "st-a offline as it announced") { status in
                    let list = (status["devices"] as? [String: Any])?["list"] as? [[String: Any]]
                    return list?.first { $0["deviceId"] as? String == "st-a" }?["online"] as? Bool == false
                }

                let links = try #require(status["links"] as? [String: [String: Any]])
                let upstreamPort = try #require(bed.upstreamBroker?.port)
                #expect(links["deviceBroker"]?["address"] as? String == "127.0.0.1:\(bed.deviceBroker.port)")
                #expect(links["deviceBroker"]?["state"] as? String == "subscribed")
                #expect(links["deviceBroker"]?["sinceMs"] as? Int != nil)
                #expect(links["upstream"]?["address"] as? String == "127.0.0.1:\(upstreamPort)")
                #expect(links["upstream"]?["state"] as? String == "connected")
                // The store's commits are the daemon's writes: the kernel counted them.
                #expect(((status["disk"] as? [String: Any])?["writtenBytes"] as? Int ?? 0) > 0, "\(status["disk"] ?? "-")")
                let history = try #require(status["history"] as? [[String: Any]])
                #expect(!history.isEmpty && history.allSatisfy { $0["received"] is Int && $0["forwarded"] is Int })

                // Both brokers gone: each link says down, since when, and why.
                let upSince = links["deviceBroker"]?["sinceMs"] as? Int ?? .max
                _ = try await bed.deviceBroker.stop()
                _ = try await bed.upstreamBroker?.stop()
                let down = try await Self.waitForStatus(admin, "both links down") { status in
                    let links = status["links"] as? [String: [String: Any]]
                    return links?["deviceBroker"]?["state"] as? String == "down" && links?["upstream"]?["state"] as? String == "down"
                }
                let downLinks = try #require(down["links"] as? [String: [String: Any]])
                for name in ["deviceBroker", "upstream"] {
                    let error = downLinks[name]?["lastError"] as? String ?? ""
                    #expect(!error.isEmpty, "\(name): \(downLinks)")
                }
                #expect(downLinks["deviceBroker"]?["sinceMs"] as? Int ?? 0 >= upSince)
                #expect(downLinks["deviceBroker"]?["address"] as? String == "127.0.0.1:\(bed.deviceBroker.port)")
                // What the daemon logged about it is on the page, as values.
                let logged = try await Self.waitForStatus(admin, "the lost links among the recent problems") { status in
                    let problems = status["problems"] as? [[String: Any]] ?? []
                    // The connection failure itself (not just any warning from earlier in the run).
                    return problems.contains {
                        $0["level"] as? String == "error" && ($0["logger"] as? String ?? "").hasSuffix(".mqtt")
                            && ($0["message"] as? String ?? "").contains("cannot connect to the MQTT broker")
                            && ($0["details"] as? String ?? "").contains("127.0.0.1:")
                    }
                }
                #expect((logged["problems"] as? [[String: Any]])?.allSatisfy { ($0["count"] as? Int ?? 0) >= 1 } == true)
            }
        }
    }
}
