import BuildInfo
import Foundation
import GatewayCore
import Hummingbird
import HummingbirdTesting
import Logging
import Metrics
import MLLink
@testable import Outbox
import Prometheus
import Registration
import Reporting
import Synchronization
import Testing

@testable import Admin

/// The admin API over real HTTP on loopback (Hummingbird's live test server), with its data
/// served from closures the way the daemon wires them.
@Suite(.timeLimit(.minutes(1))) struct AdminServerTests {
    /// Values the closures hand out, changed by the tests.
    final class World: Sendable {
        let ready = Mutex(false)
        let refreshed = Mutex(0)
        let registered = Mutex<[(DeviceID, [UInt8])]>([])
        let devices = Mutex<[AdminSources.Device]>([
            .init(deviceId: "d1", lastSeenMs: 1000, lastChannel: "event", messages: 2, rejected: 1, registered: true, userId: "u1", type: "lamp")
        ])
        let written = Mutex<Int64?>(4096)
        let problems = RecentLog(capacity: 5)
        /// What `GET /api/outbox/peek` asked the outbox for.
        let peeks = Mutex<[(String?, Int)]>([])
    }

    static func makeServer(
        world: World, token: String? = nil, registrations: Bool = true, live: LiveFeed? = nil,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
        configure: (inout AdminConfiguration) -> Void = { _ in }
    ) -> AdminServer {
        var configuration = AdminConfiguration()
        configuration.port = 0
        configuration.token = token
        configure(&configuration)
        let sources = AdminSources(
            hubID: "hub-<1>",
            readiness: {
                .init(
                    storeOpen: true, deviceBrokerConnected: true, deviceSubscribed: world.ready.withLock { $0 },
                    upstreamConnected: false, upstreamLastError: "connection refused")
            },
            outboxStats: {
                let devices = (1...5).map { #"{"deviceId": "d\#($0)", "depth": 1, "bytes": 100, "oldestAgeSeconds": 12}"# }
                let json = #"{"depth": 3, "bytes": 300, "oldestAgeSeconds": 12, "drops": {"capacity": 0}, "rejects": {"invalid_json": 1}, "devices": [\#(devices.joined(separator: ","))]}"#
                return try JSONDecoder().decode(OutboxStats.self, from: Data(json.utf8))
            },
            outboxDepth: { (3, 300) },
            devices: { world.devices.withLock { $0 } },
            mlEndpoints: { [] },
            registrations: registrations
                ? .init(
                    register: { device, body in
                        world.registered.withLock { $0.append((device, body)) }
                        let fields = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
                        let requestID = fields?["requestId"] as? String
                        if fields?["userId"] as? String == "over-quota" {
                            return RegistrationResult(requestId: requestID, status: .failed, reason: "quota exceeded")
                        }
                        return RegistrationResult(requestId: requestID, status: .registered, username: device.rawValue, password: "secret", registryId: "r-1")
                    },
                    needingAttention: { [] })
                : nil,
            links: {
                (
                    deviceBroker: .init(address: "127.0.0.1:1883", state: "subscribed", sinceMs: 1_000, lastError: nil),
                    upstream: .init(address: "cloud.example:8883", state: "down", sinceMs: 2_000, lastError: "connection refused")
                )
            },
            traffic: { .init(stored: 7, duplicate: 2, rejected: 1, forwarded: 4, rejectedByReason: ["invalid json": 1]) },
            recentProblems: { world.problems.all },
            diskWritten: { world.written.withLock { $0 } },
            outboxPeek: { device, limit in
                world.peeks.withLock { $0.append((device, limit)) }
                return [StoredEvent(seq: 7, device: device ?? "d1", eventID: "e7", key: "k", receivedAt: 1, payload: [0x7B, 0xFF, 0x7D])]
            },
            refreshMetrics: { world.refreshed.withLock { $0 += 1 } })
        return AdminServer(
            configuration: configuration, sources: sources, registry: registry,
            live: live ?? LiveFeed(configuration: configuration, logger: Logger(label: "test.live")), logger: Logger(label: "test.admin"))
    }

    static let jsonHeaders: HTTPFields = [.contentType: "application/json; charset=utf-8"]

    static func json(_ response: TestResponse) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(buffer: response.body))
    }

    @Test func healthIsAlwaysUpAndReadinessFollowsTheDeviceSubscription() async throws {
        let world = World()
        try await Self.makeServer(world: world).makeApplication().test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let body = try #require(try Self.json(response) as? [String: Any])
                #expect(body["deviceSubscribed"] as? Bool == false)
                #expect(body["upstreamLastError"] as? String == "connection refused")
            }
            world.ready.withLock { $0 = true }
            try await client.execute(uri: "/readyz", method: .get) { response in
                // Upstream is down, and that does not make the hub unready: the outbox holds events.
                #expect(response.status == .ok)
            }
        }
    }

    @Test func everyRouteButHealthAndReadinessNeedsTheToken() async throws {
        let world = World()
        try await Self.makeServer(world: world, token: "s3cret-token").makeApplication().test(.live) { client in
            for path in ["/api/devices", "/api/outbox", "/api/ml/endpoints", "/api/status", "/metrics", "/api/registrations"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .unauthorized, "\(path)")
                    #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                }
                try await client.execute(uri: path, method: .get, headers: [.authorization: "Bearer s3cret-tokeN"]) {
                    #expect($0.status == .unauthorized, "\(path) with a wrong token")
                }
                try await client.execute(uri: path, method: .get, headers: [.authorization: "Bearer s3cret-token"]) {
                    #expect($0.status == .ok, "\(path) with the token")
                }
            }
            try await client.execute(uri: "/live", method: .get) { #expect($0.status == .unauthorized, "the WebSocket too") }
            // A token in the query only opens the WebSocket: URLs end up in histories and logs.
            try await client.execute(uri: "/api/devices?access_token=s3cret-token", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/status?access_token=s3cret-token", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/metrics?access_token=s3cret-token", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/devices?access_token=s3cret", method: .get) { #expect($0.status == .unauthorized) }
            // The status page's shell carries no data and needs no token; its data does.
            try await client.execute(uri: "/", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .serviceUnavailable) }
            try await client.execute(
                uri: "/api/devices", method: .post, headers: [.authorization: "Bearer nope", .contentType: "application/json"], body: ByteBuffer(string: "{}")
            ) {
                #expect($0.status == .unauthorized)
            }
        }
    }

    @Test func tokenComparisonNeedsEveryByte() {
        #expect(BearerTokenMiddleware<AdminServer.Context>.equalInConstantTime(Array("abc".utf8), Array("abc".utf8)))
        #expect(!BearerTokenMiddleware<AdminServer.Context>.equalInConstantTime(Array("abc".utf8), Array("abd".utf8)))
        #expect(!BearerTokenMiddleware<AdminServer.Context>.equalInConstantTime(Array("abc".utf8), Array("abcd".utf8)))
        #expect(!BearerTokenMiddleware<AdminServer.Context>.equalInConstantTime([], Array("a".utf8)))
    }

    @Test func metricsAreRenderedInThePrometheusTextFormatAfterARefresh() async throws {
        let world = World()
        let registry = PrometheusCollectorRegistry()
        let factory = MetricsExport.factory(registry: registry)
        Counter(label: "gateway.mqtt.messages.rejected.total", dimensions: [("reason", "invalid_json")], factory: factory).increment(by: 3)
        Gauge(label: "gateway.outbox.depth", factory: factory).record(42)
        let latency = Timer(label: "gateway.dialog.latency.seconds", factory: factory)
        latency.recordMilliseconds(80)
        latency.recordMilliseconds(700)
        try await Self.makeServer(world: world, registry: registry).makeApplication().test(.live) { client in
            try await client.execute(uri: "/metrics", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                let text = String(buffer: response.body)
                #expect(text.contains(#"gateway_mqtt_messages_rejected_total{reason="invalid_json"} 3"#))
                #expect(text.contains("gateway_outbox_depth 42"))
                #expect(text.contains("# TYPE gateway_dialog_latency_seconds histogram"))
                // The dialog latency's own buckets (seconds), not the library's defaults.
                #expect(text.contains(#"gateway_dialog_latency_seconds_bucket{le="0.1"} 1"#))
                #expect(text.contains(#"gateway_dialog_latency_seconds_bucket{le="1.0"} 2"#))
                #expect(text.contains("gateway_dialog_latency_seconds_count 2"))
            }
        }
        #expect(world.refreshed.withLock { $0 } == 1)
    }

    @Test func jsonAPIShowsOutboxDevicesAndEndpoints() async throws {
        let world = World()
        try await Self.makeServer(world: world).makeApplication().test(.live) { client in
            try await client.execute(uri: "/api/outbox?devices=2", method: .get) { response in
                let body = try #require(try Self.json(response) as? [String: Any])
                #expect(body["depth"] as? Int == 3)
                #expect((body["devices"] as? [Any])?.count == 2)
            }
            try await client.execute(uri: "/api/devices", method: .get) { response in
                let body = try #require(try Self.json(response) as? [[String: Any]])
                #expect(body.first?["deviceId"] as? String == "d1")
                #expect(body.first?["userId"] as? String == "u1")
                #expect(body.first?["lastSeenMs"] as? Int == 1000)
            }
            try await client.execute(uri: "/api/ml/endpoints", method: .get) { response in
                let body = try Self.json(response)
                #expect(body as? [Any] != nil)
            }
        }
    }

    @Test func postDevicesRunsTheRegistrationAndAnswersLikeRegistrationResult() async throws {
        let world = World()
        try await Self.makeServer(world: world).makeApplication().test(.live) { client in
            let body = #"{"deviceId": "lamp-7", "requestId": "req-1", "userId": "u1", "type": "lamp", "premium": true}"#
            try await client.execute(uri: "/api/devices", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: body)) { response in
                #expect(response.status == .created)
                let result = try JSONDecoder().decode(RegistrationResult.self, from: Data(buffer: response.body))
                #expect(result == RegistrationResult(requestId: "req-1", status: .registered, username: "lamp-7", password: "secret", registryId: "r-1"))
            }
            let (device, sent) = try #require(world.registered.withLock { $0.first })
            #expect(device.rawValue == "lamp-7")
            let fields = try #require(try JSONSerialization.jsonObject(with: Data(sent)) as? [String: Any])
            #expect(fields["deviceId"] == nil)
            #expect(fields["premium"] as? Bool == true)

            // Without a request id the API makes one, so the answer can still be matched.
            try await client.execute(uri: "/api/devices", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: #"{"deviceId": "lamp-8", "userId": "over-quota", "type": "lamp"}"#)) { response in
                #expect(response.status == .conflict)
                let result = try JSONDecoder().decode(RegistrationResult.self, from: Data(buffer: response.body))
                #expect(result.reason == "quota exceeded")
                #expect(result.requestId?.count == 36)
            }
            for bad in [#"{"deviceId": "a/b", "userId": "u"}"#, "not json", #"{"userId": "u"}"#, String(repeating: "x", count: 5000)] {
                try await client.execute(uri: "/api/devices", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: bad)) { response in
                    #expect([.badRequest, .contentTooLarge].contains(response.status), "\(bad.prefix(40))")
                }
            }
        }
        #expect(world.registered.withLock { $0.count } == 2)
    }

    @Test func postDevicesSaysRegistrationIsOffWhenItIs() async throws {
        try await Self.makeServer(world: World(), registrations: false).makeApplication().test(.live) { client in
            try await client.execute(uri: "/api/devices", method: .post, headers: Self.jsonHeaders, body: ByteBuffer(string: #"{"deviceId": "x", "userId": "u", "type": "t"}"#)) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("registration.enabled"))
            }
            try await client.execute(uri: "/api/registrations", method: .get) { #expect($0.status == .notFound) }
        }
    }

    @Test func statusPageIsOneSelfContainedDocumentWithoutDataAndItsDataComesFromTheAPI() async throws {
        let world = World()
        let live = LiveFeed(configuration: AdminConfiguration(), logger: Logger(label: "test.live"))
        let device = try #require(DeviceID("d1"))
        live.publish(.response(DeviceResponse(
            device: device, kind: .dialogResponse,
            payload: Array(#"{"session":"s","transcript":"<script>alert(1)</script>","intent":"lights.on","replyText":"ok"}"#.utf8))))
        try await Self.makeServer(world: world, token: "page-token", live: live).makeApplication().test(.live) { client in
            try await client.execute(uri: "/", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                #expect(response.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'none'") == true)
                #expect(response.headers[.contentSecurityPolicy]?.contains("connect-src 'self'") == true)
                #expect(response.headers[.init("X-Frame-Options")!] == "DENY")
                #expect(response.headers[.init("Referrer-Policy")!] == "no-referrer")
                let page = String(buffer: response.body)
                // Served without the token, so nothing of the hub is in it.
                #expect(!page.contains("hub-"))
                #expect(!page.contains("lights.on"))
                // The token comes from the fragment and goes out as a header (and to /live only).
                #expect(page.contains("location.hash"))
                #expect(page.contains("Authorization: 'Bearer ' + token"))
                #expect(page.contains("history.replaceState"))
                // No external assets: nothing is fetched from another origin.
                #expect(!page.contains("src=\"http"))
                #expect(!page.contains("href=\"http"))
                #expect(!page.contains("stylesheet"))
                #expect(!page.contains("<script src"))
                // Not even a favicon request (it would be refused without the token).
                #expect(page.contains(#"<link rel="icon" href="data:,">"#))
                // The dashboard's parts: a chart with axes in events/s, the device table with its filter.
                #expect(page.contains(#"id="axes""#) && page.contains("'events/s'"))
                #expect(page.contains(#"id="device-filter""#) && page.contains(#"data-key="lastSeenMs""#))
            }
            try await client.execute(uri: "/api/status", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/status", method: .get, headers: [.authorization: "Bearer page-token"]) { response in
                #expect(response.status == .ok)
                let body = try #require(try Self.json(response) as? [String: Any])
                #expect(body["hubId"] as? String == "hub-<1>")
                #expect(body["outboxDepth"] as? Int == 3)
                #expect(body["outboxBytes"] as? Int == 300)
                // The dashboard: totals and rejects by reason since start, drops by reason from the store.
                let traffic = try #require(body["traffic"] as? [String: Any])
                #expect(traffic["stored"] as? Int == 7 && traffic["forwarded"] as? Int == 4)
                #expect(traffic["duplicate"] as? Int == 2 && traffic["rejected"] as? Int == 1)
                #expect(traffic["received"] as? Int == 10)
                #expect((traffic["rejectedByReason"] as? [String: Int]) == ["invalid json": 1])
                #expect((traffic["droppedByReason"] as? [String: Int]) == ["capacity": 0])
                let outbox = try #require(body["outbox"] as? [String: Any])
                #expect(outbox["depth"] as? Int == 3 && outbox["oldestAgeSeconds"] as? Double == 12)
                let links = try #require(body["links"] as? [String: [String: Any]])
                #expect(links["deviceBroker"]?["address"] as? String == "127.0.0.1:1883")
                #expect(links["deviceBroker"]?["state"] as? String == "subscribed")
                #expect(links["upstream"]?["address"] as? String == "cloud.example:8883")
                #expect(links["upstream"]?["sinceMs"] as? Int == 2_000)
                #expect(links["upstream"]?["lastError"] as? String == "connection refused")
                // d1 was last seen at 1970 + 1 s: long ago, so offline.
                let devices = try #require(body["devices"] as? [String: Any])
                #expect(devices["onlineSeconds"] as? Int == 300 && devices["total"] as? Int == 1 && devices["online"] as? Int == 0)
                let list = try #require(devices["list"] as? [[String: Any]])
                #expect(list.count == 1 && list.first?["deviceId"] as? String == "d1")
                #expect(list.first?["online"] as? Bool == false && list.first?["events"] as? Int == 2 && list.first?["rejected"] as? Int == 1)
                // The chart's samples carry the counters its rates come from.
                let history = try #require(body["history"] as? [[String: Any]])
                #expect(history.allSatisfy { $0["received"] != nil && $0["forwarded"] != nil })
                #expect((body["readiness"] as? [String: Any])?["upstreamConnected"] as? Bool == false)
                let recent = try #require(body["recent"] as? [[String: Any]])
                #expect(recent.count == 1)
                #expect(recent.first?["deviceId"] as? String == "d1")
                #expect((recent.first?["payload"] as? String)?.contains("lights.on") == true)
            }
        }
    }

    @Test func aDeviceIsOnlineWhenItSentWithinDeviceOnlineSeconds() throws {
        let server = Self.makeServer(world: World())
        // d1 was last seen at 1_000 ms; the window is 300 s.
        let within = StatusPage.Hub(sources: server.sources, stats: nil, onlineSeconds: 300, now: 1_000 + 300_000)
        #expect(within.devices.online == 1 && within.devices.list.first?.online == true)
        let past = StatusPage.Hub(sources: server.sources, stats: nil, onlineSeconds: 300, now: 1_000 + 300_001)
        #expect(past.devices.online == 0 && past.devices.list.first?.online == false)
        // Without the store's statistics its drops and oldest age are unknown, not zero.
        #expect(past.traffic.droppedByReason == nil && past.outbox.oldestAgeSeconds == nil)
        #expect(past.traffic.rejectedByReason == ["invalid json": 1])
    }

    @Test func theChartsSamplesCarryTheCountersOfItsRates() {
        let history = DepthHistory(capacity: 2)
        history.record(depth: 1, received: 10, forwarded: 4, atMs: 1_000)
        history.record(depth: 2, received: 30, forwarded: 14, atMs: 11_000)
        history.record(depth: 3, received: 50, forwarded: 40, atMs: 21_000)
        #expect(history.all == [
            .init(ts: 11_000, depth: 2, received: 30, forwarded: 14), .init(ts: 21_000, depth: 3, received: 50, forwarded: 40),
        ])
    }

    @Test func theDiskWrittenPerDayIsTheRateSinceTheOldestSampleOnceAMinuteHasPassed() {
        let history = DepthHistory(capacity: 120)
        #expect(history.writtenPerDay(now: (ts: 100_000, written: 5_000)) == nil)
        history.record(depth: 0, written: 1_000, atMs: 0)
        // Under a minute of samples: no rate yet (a burst at start is not a day's wear).
        #expect(history.writtenPerDay(now: (ts: 59_999, written: 2_000)) == nil)
        // 8,640 bytes in 60 s → 12,441,600 a day.
        #expect(history.writtenPerDay(now: (ts: 60_000, written: 9_640)) == 12_441_600)
        // Unknown now (the kernel does not count): unknown rate.
        #expect(history.writtenPerDay(now: (ts: 60_000, written: nil)) == nil)
    }

    @Test func theStatusCarriesTheDiskWrittenAndTheRecentWarningsAndErrors() async throws {
        let world = World()
        world.problems.record(level: .info, logger: "edge-gateway", message: "not kept", metadata: nil)
        world.problems.record(level: .error, logger: "edge-gateway.upstream", message: "upstream <b>down</b>", metadata: ["address": "cloud:8883"])
        let server = Self.makeServer(world: world)
        try await server.makeApplication().test(.live) { client in
            try await client.execute(uri: "/api/status", method: .get) { response in
                let json = try #require(try Self.json(response) as? [String: Any])
                #expect((json["disk"] as? [String: Any])?["writtenBytes"] as? Int == 4096)
                let problems = try #require(json["problems"] as? [[String: Any]])
                #expect(problems.count == 1)
                #expect(problems.first?["level"] as? String == "error" && problems.first?["message"] as? String == "upstream <b>down</b>")
                #expect(problems.first?["details"] as? String == "address=cloud:8883" && problems.first?["count"] as? Int == 1)
            }
        }
    }

    /// `GET /api/outbox/peek` (what `outbox stats`/`peek` use): the limit is bounded whatever is asked
    /// (no unbounded read of a big backlog), a bad limit is the default, the device is passed as data,
    /// and a payload that is not UTF-8 still makes valid JSON.
    @Test func outboxPeekBoundsItsLimitAndEncodesWhateverThePayloadIs() async throws {
        let world = World()
        try await Self.makeServer(world: world).makeApplication().test(.live) { client in
            for query in ["?limit=99999999999", "?limit=-5", "?limit=abc", "?device=%22%3E%3Cx%3E&limit=3"] {
                try await client.execute(uri: "/api/outbox/peek" + query, method: .get) { response in
                    #expect(response.status == .ok)
                    let events = try #require(try Self.json(response) as? [[String: Any]])
                    #expect(events.first?["payload"] as? String == "{\u{FFFD}}")
                }
            }
        }
        let asked = world.peeks.withLock { $0 }
        #expect(asked.map(\.1) == [1000, 1, 10, 3])
        #expect(asked.last?.0 == "\"><x>")
    }

    @Test func apiNamesTheVersionCommitHubAndRoutes() async throws {
        try await Self.makeServer(world: World()).makeApplication().test(.live) { client in
            try await client.execute(uri: "/api", method: .get) { response in
                #expect(response.status == .ok)
                let json = try #require(try Self.json(response) as? [String: Any])
                #expect(json["version"] as? String == GatewayVersion.version && json["commit"] as? String == GatewayVersion.commit)
                #expect(json["hubId"] as? String == "hub-<1>" && (json["uptimeSeconds"] as? Int ?? -1) >= 0)
                #expect((json["routes"] as? [String])?.contains("GET /api/status") == true)
            }
        }
    }
}
