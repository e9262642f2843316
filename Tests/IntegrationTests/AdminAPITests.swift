import Foundation
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

                _ = try await admin.waitForMetric("gateway_outbox_events_appended") { $0 >= 3 }
                _ = try await admin.waitForMetric("gateway_outbox_events_acked") { $0 >= 3 }
                let metrics = try await admin.get("/metrics").text
                #expect(AdminClient.value(of: #"gateway_mqtt_messages_rejected{reason="invalid_json"}"#, in: metrics) == 1)
                #expect(AdminClient.value(of: "gateway_ingress_events_stored", in: metrics) == 3)
                #expect(AdminClient.value(of: "gateway_upstream_connected", in: metrics) == 1)
                #expect(AdminClient.value(of: "gateway_device_broker_subscribed", in: metrics) == 1)
                #expect(AdminClient.value(of: "gateway_outbox_oldest_age_seconds", in: metrics) != nil)
                #expect(AdminClient.value(of: "gateway_upstream_publish_duration_count", in: metrics) ?? 0 >= 3)
                // Created with the dialog service, so exported before the first dialog (count 0).
                #expect(metrics.contains("# TYPE gateway_dialog_latency histogram"))
                #expect(AdminClient.value(of: "gateway_dialog_latency_count", in: metrics) == 0)

                let devices = try #require(try await admin.get("/api/devices").json as? [[String: Any]])
                let device = try #require(devices.first { $0["deviceId"] as? String == "dev-a" })
                #expect(device["messages"] as? Int == 4)
                #expect(device["rejected"] as? Int == 1)
                #expect(device["lastChannel"] as? String == "event")

                let outbox = try #require(try await admin.get("/api/outbox").json as? [String: Any])
                #expect(outbox["depth"] as? Int == 0)
                let endpoints = try await admin.get("/api/ml/endpoints")
                #expect(endpoints.status == 200 && endpoints.text == "[]")
                let page = try await admin.get("/?access_token=op-token", token: .some(nil))
                #expect(page.status == 200 && page.text.contains("hub-test"))
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
    }
}
