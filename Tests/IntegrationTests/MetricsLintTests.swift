import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The daemon's `/metrics` after real traffic, judged by `promtool check metrics` (Debian's
    /// `prometheus` package; scripts/setup installs it): HELP on every family, base units, `_total`
    /// on counters (STYLE.md habit 15).
    @Suite struct MetricsLintTests {
        @Test(.enabled(if: Promtool.path != nil, "promtool is not installed: run scripts/setup (Debian's prometheus package)"))
        func promtoolFindsNothingInTheMetricsOfADaemonWithTraffic() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: ["admin.port": .int(port), "admin.token": "op-token"])
                let admin = AdminClient(port: port, token: "op-token")

                // Stored and forwarded, a duplicate, a reject; a request with the wrong token.
                let events = (0..<3).map { DeviceEvent(deviceId: "lint-1", seq: $0) }
                try await bed.device("lint-1").publish(events)
                try await bed.device("lint-1").publish([events[0]])
                try await bed.device("lint-1").publishOnce("{not json")
                _ = try await bed.waitForAcks(count: 5) { $0.deviceId == "lint-1" }
                _ = try await bed.waitForUpstream(count: 3)
                #expect(try await admin.get("/api/devices", token: "wrong").status == 401)
                _ = try await admin.waitForMetric("gateway_upstream_events_forwarded_total") { $0 >= 3 }
                // Their removal waits up to store.removalDelayMs to share a commit.
                _ = try await admin.waitForMetric("gateway_outbox_events_acked_total") { $0 >= 3 }

                let metrics = try await admin.get("/metrics").text
                // The families the traffic touched are there, under their new names, with samples.
                for sample in [
                    "gateway_ingress_events_stored_total", "gateway_ingress_events_duplicate_total",
                    #"gateway_mqtt_messages_rejected_total{reason="invalid_json"}"#, "gateway_outbox_events_appended_total",
                    "gateway_outbox_events_acked_total", "gateway_upstream_events_forwarded_total",
                    "gateway_admin_requests_unauthorized_total", "gateway_ingress_commit_window_seconds_count",
                    "gateway_upstream_publish_duration_seconds_count", "gateway_outbox_depth", "gateway_outbox_bytes",
                    "gateway_outbox_oldest_age_seconds", "gateway_upstream_connected", "gateway_device_broker_subscribed",
                    "gateway_outbox_commits_total", "gateway_outbox_fsyncs_total", "gateway_outbox_written_bytes_total",
                    #"gateway_upstream_connects_total{result="ok"}"#,
                ] {
                    #expect((AdminClient.value(of: sample, in: metrics) ?? 0) >= (sample.hasSuffix("_total") || sample.hasSuffix("_count") ? 1 : 0),
                            "\(sample) missing or zero")
                }
                #expect(metrics.contains(#"gateway_build_info{version=""#), "\(metrics)")
                let families = metrics.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.count
                let helps = metrics.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.count
                #expect(families >= 20 && helps == families, "\(families) families, \(helps) with HELP")

                let result = try await Promtool.checkMetrics(metrics, in: sandbox.directory)
                #expect(result.exit == .exited(0) && result.problems.isEmpty, "promtool check metrics:\n\(result.problems)")
            }
        }
    }
}
