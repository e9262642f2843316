import BrokerTestSupport
import Foundation
import HTTPTestSupport
import Testing

extension IntegrationSuite {
    /// The admin API of the running daemon: token, health, metrics counted by the real paths,
    /// the device list.
    @Suite struct AdminAPITests {
        @Test func metricsAndTheDeviceListFollowWhatDevicesSend() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port), "admin.token": "op-token"])
                let admin = AdminClient(port: port, token: "op-token")

                // Probes need no token; everything else does.
                #expect(try await admin.get("/healthz", token: .some(nil)).status == 200)
                let ready = try await admin.get("/readyz", token: .some(nil))
                #expect(ready.status == 200, "\(ready.text)")
                #expect(try await admin.get("/metrics", token: .some(nil)).status == 401)
                #expect(try await admin.get("/api/devices", token: "wrong").status == 401)

                let events = (0..<3).map { DeviceEvent(deviceId: "dev-a", seq: $0) }
                try await bed.device("dev-a").publish(events)
                try await bed.device("dev-a").publishOnce("{not json")
                _ = try await bed.waitForAcks(count: 4) { $0.deviceId == "dev-a" }
                _ = try await bed.waitForUpstream(count: 3)

                _ = try await admin.waitForMetric("gateway_outbox_events_appended_total") { $0 >= 3 }
                _ = try await admin.waitForMetric("gateway_outbox_events_acked_total") { $0 >= 3 }
                let metrics = try await admin.get("/metrics").text
                #expect(AdminClient.value(of: #"gateway_mqtt_messages_rejected_total{reason="invalid_json"}"#, in: metrics) == 1)
                #expect(AdminClient.value(of: "gateway_ingress_events_stored_total", in: metrics) == 3)
                #expect(AdminClient.value(of: "gateway_upstream_connected", in: metrics) == 1)
                #expect(AdminClient.value(of: "gateway_device_broker_subscribed", in: metrics) == 1)
                #expect(AdminClient.value(of: "gateway_outbox_oldest_age_seconds", in: metrics) != nil)
                #expect(AdminClient.value(of: "gateway_upstream_publish_duration_seconds_count", in: metrics) ?? 0 >= 3)
                // Created with the dialog service, so exported before the first dialog (count 0).
                #expect(metrics.contains("# TYPE gateway_dialog_latency_seconds histogram"))
                #expect(AdminClient.value(of: "gateway_dialog_latency_seconds_count", in: metrics) == 0)

                let devices = try #require(try await admin.get("/api/devices").json as? [[String: Any]])
                let device = try #require(devices.first { $0["deviceId"] as? String == "dev-a" })
                #expect(device["messages"] as? Int == 4)
                #expect(device["rejected"] as? Int == 1)
                #expect(device["lastChannel"] as? String == "event")

                let outbox = try #require(try await admin.get("/api/outbox").json as? [String: Any])
                #expect(outbox["depth"] as? Int == 0)
                let endpoints = try await admin.get("/api/ml/endpoints")
                #expect(endpoints.status == 200 && endpoints.text == "[]")
                // The page's shell is public and empty; its data needs the token.
                let page = try await admin.get("/", token: .some(nil))
                #expect(page.status == 200 && page.text.contains("id=\"live\"") && !page.text.contains("hub-test"))
                let status = try await admin.get("/api/status")
                #expect(status.status == 200 && (status.json as? [String: Any])?["hubId"] as? String == "hub-test")
                #expect(try await admin.get("/api/status", token: .some(nil)).status == 401)
            }
        }

        @Test func aBusyAdminPortIsLoggedAndTheGatewayRunsOn() async throws {
            try await withSandbox { sandbox in
                // Something else holds the port: the admin API retries, events still flow.
                let holder = try SilentTCPServer(port: try FreePort.next())
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(holder.port)])
                try await bed.gateway.waitForLog("the admin API could not listen; retrying")
                try await bed.device("dev-b").publish([DeviceEvent(deviceId: "dev-b", seq: 0)])
                _ = try await bed.waitForUpstream(count: 1)
                holder.stop()
            }
        }

        // MARK: - The admin API belongs to the hub's operator (issue 12, item 6): each attack fails,
        // and afterwards an honest request and an honest device event still work.

        static let upgradeHeaders = [
            "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
        ]

        /// An honest device's event is still acked `stored`.
        static func honestDeviceIsStillServed(_ bed: TestBed, _ id: String) async throws {
            try await bed.device(id).publish([DeviceEvent(deviceId: id, seq: 0)])
            let acks = try await bed.waitForAcks(count: 1) { $0.deviceId == id }
            #expect(acks.first?.isStored == true, "\(acks)")
        }

        static func rejected(_ admin: AdminClient, _ reason: String) async throws -> Double {
            AdminClient.value(of: #"gateway_admin_requests_rejected_total{reason="\#(reason)"}"#, in: try await admin.get("/metrics").text) ?? 0
        }

        @Test func aCrossSitePostToApiDevicesRegistersNoDevice() async throws {
            let port = try FreePort.next()
            // No admin.token: only the boundary stands between a web page and the saga.
            try await DeviceRegistrationTests().withRegistration(extra: ["admin.port": .int(port)]) { reg in
                reg.services.users.withLock { $0["ada"] = .init(quota: 5, count: 0) }
                let body = #"{"deviceId": "evil-1", "requestId": "req-evil", "userId": "ada", "type": "camera", "premium": false}"#
                try await RawHTTPConnection.with(port: port) { connection in
                    let simple = try await connection.request(
                        "POST", "/api/devices", host: "127.0.0.1:\(port)", headers: ["Origin: http://evil.example", "Content-Type: text/plain"], body: body)
                    #expect(simple.status == 403, "\(simple.head)")
                    let textPlain = try await connection.request(
                        "POST", "/api/devices", host: "127.0.0.1:\(port)", headers: ["Content-Type: text/plain"], body: body)
                    #expect(textPlain.status == 415, "\(textPlain.head)")
                    let json = try await connection.request(
                        "POST", "/api/devices", host: "127.0.0.1:\(port)", headers: ["Origin: http://evil.example", "Content-Type: application/json"], body: body)
                    #expect(json.status == 403, "\(json.head)")
                }
                // Nothing reached the saga: no REST call, no broker account.
                #expect(reg.services.recorded.isEmpty, "\(reg.services.recorded)")
                let admin = AdminClient(port: port)
                #expect(try await Self.rejected(admin, "foreign_origin") == 2)
                #expect(try await Self.rejected(admin, "unsupported_media_type") == 1)
                try await reg.bed.gateway.waitForLog("admin request from another site's page refused")

                // The operator's own request still registers.
                let honest = try await admin.post(
                    "/api/devices", json: #"{"deviceId": "porch-9", "requestId": "req-ok", "userId": "ada", "type": "camera", "premium": false}"#)
                #expect(honest.status == 201, "\(honest.text)")
                try await Self.honestDeviceIsStillServed(reg.bed, "dev-honest")
            }
        }

        @Test func aCrossSiteWebSocketUpgradeToLiveIsRefused() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port)])
                try await RawHTTPConnection.with(port: port) { connection in
                    let reply = try await connection.request(
                        "/live", host: "127.0.0.1:\(port)", headers: Self.upgradeHeaders + ["Origin: http://evil.example"])
                    #expect(reply.status == 403, "\(reply.head)")
                }
                try await RawHTTPConnection.with(port: port) { connection in
                    let reply = try await connection.request(
                        "/live", host: "127.0.0.1:\(port)", headers: Self.upgradeHeaders + ["Origin: http://127.0.0.1:\(port)"])
                    #expect(reply.status == 101, "the hub's own page: \(reply.head)")
                }
                #expect(try await Self.rejected(AdminClient(port: port), "foreign_origin") == 1)
                try await Self.honestDeviceIsStillServed(bed, "dev-honest")
            }
        }

        @Test func aDNSRebindingHostGets421() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port)])
                for path in ["/", "/api/outbox", "/metrics", "/api/status", "/healthz"] {
                    try await RawHTTPConnection.with(port: port) { connection in
                        let reply = try await connection.request(path, host: "evil.example:\(port)")
                        #expect(reply.status == 421, "\(path): \(reply.head)")
                        #expect(!reply.body.contains("hub-test"))
                    }
                }
                let admin = AdminClient(port: port)
                #expect(try await Self.rejected(admin, "misdirected_host") == 5)
                #expect(try await admin.get("/api/outbox").status == 200)
                try await Self.honestDeviceIsStillServed(bed, "dev-honest")
            }
        }

        @Test func aQueryStringTokenOnTheAPIIsRefused() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port), "admin.token": "op-token"])
                let admin = AdminClient(port: port, token: "op-token")
                for path in ["/api/outbox", "/api/devices", "/metrics", "/api/status"] {
                    #expect(try await admin.get(path + "?access_token=op-token", token: .some(nil)).status == 401, "\(path)")
                }
                // The WebSocket is the one route that takes it (a browser cannot set the header there).
                try await RawHTTPConnection.with(port: port) { connection in
                    let reply = try await connection.request("/live?access_token=op-token", host: "127.0.0.1:\(port)", headers: Self.upgradeHeaders)
                    #expect(reply.status == 101, "\(reply.head)")
                }
                #expect(try await admin.get("/api/outbox").status == 200)
                try await Self.honestDeviceIsStillServed(bed, "dev-honest")
            }
        }

        // Without the timeout the read would wait for ever: the limit turns that into a failure.
    @Test(.timeLimit(.minutes(1))) func aSlowlorisConnectionIsClosedAndAConnectionFloodIsCapped() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(
                    in: sandbox, overrides: ["admin.port": .int(port), "admin.idleTimeoutSeconds": 1, "admin.maxConnections": 2])
                // Connects and sends half a request head, then nothing: closed, no answer.
                let dripped = try await RawHTTPConnection.with(port: port) { connection in
                    try await connection.send("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    return try await connection.readUntilClosed()
                }
                #expect(dripped.isEmpty)
                // Two connections in use; the third is closed at once, the two keep working.
                try await RawHTTPConnection.with(port: port) { first in
                    #expect(try await first.request("/healthz").status == 200)
                    try await RawHTTPConnection.with(port: port) { second in
                        #expect(try await second.request("/healthz").status == 200)
                        let extra = try await RawHTTPConnection.answerBeforeClose(
                            port: port, sending: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                        #expect(extra.isEmpty)
                        #expect(try await first.request("/healthz").status == 200)
                        let metrics = try await second.request("/metrics")
                        #expect(AdminClient.value(of: #"gateway_admin_requests_rejected_total{reason="too_many_connections"}"#, in: metrics.body) == 1)
                        #expect(AdminClient.value(of: #"gateway_admin_requests_rejected_total{reason="idle_timeout"}"#, in: metrics.body) == 1)
                    }
                }
                try await Self.honestDeviceIsStillServed(bed, "dev-honest")
            }
        }

        @Test(arguments: ["admin.enabled", "audio.enabled", "registration.enabled"])
        func aDisabledPartLeavesTheRestRunning(key: String) async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                var overrides: GatewayConfig = ["admin.port": .int(port)]
                overrides[key] = false
                let bed = try await TestBed.start(in: sandbox, overrides: overrides)
                try await Self.honestDeviceIsStillServed(bed, "dev-a")
                _ = try await bed.waitForUpstream(count: 1)
                #expect(bed.gateway.isRunning, "\(bed.diagnostics)")
                #expect(!bed.gateway.currentRunLog.contains("Service failed"), "\(bed.diagnostics)")
                let listening = (try? await RawHTTPConnection.with(port: port) { try await $0.request("/healthz").status }) != nil
                #expect(listening == (key != "admin.enabled"), "admin port \(port) listening: \(listening)")
            }
        }
    }
}
