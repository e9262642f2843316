import Foundation
import GatewayCore
import BuildInfo
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import Metrics
import MLLink
import NIOCore
import Outbox
import Prometheus
import Registration
import ServiceLifecycle
import Synchronization

/// The operator's HTTP surface (Hummingbird): `/healthz`, `/readyz`, `/metrics`, the JSON API
/// under `/api`, the live WebSocket `/live` and the status page `/`. A port that cannot be bound
/// is logged and retried; the rest of the daemon runs on without it.
public final class AdminServer: Service, Sendable {
    public typealias Context = BasicWebSocketRequestContext

    let configuration: AdminConfiguration
    let sources: AdminSources
    let registry: PrometheusCollectorRegistry
    let live: LiveFeed
    let logger: Logger
    private let port = BoundPort()
    /// When the server was made (≈ when the daemon started), ms since the epoch.
    let started = Int64(Date().timeIntervalSince1970 * 1000)
    let history = DepthHistory(capacity: 120)
    let rejections: AdminRejections
    let connections: ConnectionCount
    /// The names requests may address (``HostPolicy``).
    let hostPolicy: HostPolicy
    /// Outbox depth sampled for the chart: 120 samples cover the last hour.
    static let historyInterval = Duration.seconds(30)
    /// Status messages to live clients.
    static let statusInterval = Duration.seconds(2)
    /// The store's statistics (rejects and drops by reason, oldest age) in live status messages are
    /// at most this old: the query reads every waiting event's row, too much for every 2 s.
    static let statsInterval = Duration.seconds(10)
    private let storeStats = Mutex<(at: ContinuousClock.Instant, stats: OutboxStats)?>(nil)

    public init(
        configuration: AdminConfiguration, sources: AdminSources, registry: PrometheusCollectorRegistry, live: LiveFeed,
        logger: Logger
    ) {
        self.configuration = configuration
        self.sources = sources
        self.registry = registry
        self.live = live
        self.logger = logger
        rejections = AdminRejections(logger: logger)
        connections = ConnectionCount(limit: configuration.maxConnections)
        hostPolicy = HostPolicy(configuration: configuration, hubID: sources.hubID)
    }

    /// The port the server listens on, once it does.
    public var boundPort: Int? { port.value }

    public func run() async throws {
        guard configuration.enabled else {
            // The daemon leaves a disabled server out of its group; should one run anyway, it
            // stays until shutdown instead of ending the group.
            try? await gracefulShutdown()
            return
        }
        logger.info(
            "admin API answers for these hosts only (admin.allowedHosts adds more)",
            metadata: ["admin.allowed_hosts": "\(hostPolicy.names.sorted().joined(separator: ", "))"])
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.sample() }
            var delay = Duration.seconds(1)
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                do {
                    try await makeApplication().run()
                    break
                } catch {
                    if Task.isCancelled || Task.isShuttingDownGracefully { break }
                    logger.error(
                        "the admin API could not listen; retrying",
                        metadata: ["admin.address": "\(configuration.host):\(configuration.port)", "error": "\(error)", "retry.in": "\(delay)"])
                }
                let wait = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(30))
            }
            group.cancelAll()
        }
    }

    /// The store's statistics, read again when older than `maxAge`; nil when they cannot be read.
    func outboxStats(maxAge: Duration) async -> OutboxStats? {
        let now = ContinuousClock.now
        if let cached = storeStats.withLock({ $0 }), cached.at.duration(to: now) < maxAge { return cached.stats }
        guard let stats = try? await sources.outboxStats() else { return nil }
        storeStats.withLock { $0 = (now, stats) }
        return stats
    }

    /// Samples the outbox depth and the event counters for the chart and sends live clients the
    /// hub's status.
    private func sample() async {
        let (history, sources, live, onlineSeconds) = (history, sources, live, configuration.deviceOnlineSeconds)
        try? await cancelWhenGracefulShutdown {
            var nextSample = ContinuousClock.now
            // The devices as the last status message had them: later ones carry only changes.
            var sentDevices: [String: StatusPage.Hub.Device] = [:]
            while !Task.isCancelled {
                let now = ContinuousClock.now
                if now >= nextSample {
                    let traffic = sources.traffic()
                    history.record(
                        depth: sources.outboxDepth().count, received: traffic.stored + traffic.duplicate + traffic.rejected,
                        forwarded: traffic.forwarded, written: sources.diskWritten())
                    nextSample = now + Self.historyInterval
                }
                if live.clientCount > 0 {
                    let hub = StatusPage.Hub(
                        sources: sources, stats: await self.outboxStats(maxAge: Self.statsInterval), onlineSeconds: onlineSeconds, history: history)
                    let current = Dictionary(hub.devices.list.map { ($0.deviceId, $0) }, uniquingKeysWith: { first, _ in first })
                    let changes = StatusPage.DeviceChanges(
                        onlineSeconds: hub.devices.onlineSeconds, total: hub.devices.total, online: hub.devices.online,
                        changed: hub.devices.list.filter { sentDevices[$0.deviceId] != $0 },
                        removed: sentDevices.keys.filter { current[$0] == nil }.sorted())
                    sentDevices = current
                    let common = Self.statusFields(hub: hub, readiness: sources.readiness(), depth: sources.outboxDepth(), endpoints: sources.mlEndpoints())
                    let (full, delta) = (Self.encoded(hub.devices), Self.encoded(changes))
                    live.publishStatus(
                        full: { json in
                            common(&json)
                            json.field("devices", rawJSON: full)
                        },
                        delta: { json in
                            common(&json)
                            json.field("devices", rawJSON: delta)
                        })
                } else {
                    sentDevices = [:]
                }
                try await Task.sleep(for: Self.statusInterval)
            }
        }
    }

    /// A `status` message's fields but the devices (README "Live stream").
    static func statusFields(
        hub: StatusPage.Hub, readiness: AdminSources.Readiness, depth: (count: Int64, bytes: Int64), endpoints: [MLEndpointPool.EndpointStatus]
    ) -> (inout JSONText) -> Void {
        let encodedEndpoints = encoded(endpoints.map(EndpointSummary.init))
        let (traffic, outbox, links, disk, problems) = (
            encoded(hub.traffic), encoded(hub.outbox), encoded(hub.links), encoded(hub.disk), encoded(hub.problems)
        )
        let wake = hub.wake.map { encoded($0) }
        return { json in
            json.field("outboxDepth", int: depth.count)
            json.field("outboxBytes", int: depth.bytes)
            json.field("upstreamConnected", bool: readiness.upstreamConnected)
            json.field("deviceSubscribed", bool: readiness.deviceSubscribed)
            json.field("mlEndpoints", rawJSON: encodedEndpoints)
            json.field("now", int: hub.now)
            json.field("traffic", rawJSON: traffic)
            json.field("outbox", rawJSON: outbox)
            json.field("links", rawJSON: links)
            json.field("disk", rawJSON: disk)
            json.field("problems", rawJSON: problems)
            if let wake { json.field("wake", rawJSON: wake) }
        }
    }

    static func encoded(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(value)).map(Array.init) ?? Array("null".utf8)
    }

    func makeApplication() -> some ApplicationProtocol {
        let router = makeRouter()
        let webSocketResponder = router.buildResponder()
        let idleTimeout = TimeAmount.nanoseconds(Int64(configuration.idleTimeout.components.seconds) * 1_000_000_000
            + configuration.idleTimeout.components.attoseconds / 1_000_000_000)
        let (connections, policy, rejections) = (connections, hostPolicy, rejections)
        let server = HTTPServerBuilder { responder in
            GuardedChildChannel(
                inner: HTTP1WebSocketUpgradeChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    configuration: .init(http1: .init(idleTimeout: idleTimeout))),
                connections: connections, idleTimeout: idleTimeout, policy: policy, rejections: rejections)
        }
        return Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "edge-gateway"),
            onServerRunning: { [port] channel in
                // Hummingbird logs the address; keep the port for tests and `admin.port: 0`.
                port.set(channel.localAddress?.port ?? 0)
            },
            logger: logger)
    }

    func makeRouter() -> Router<Context> {
        let router = Router(context: Context.self)
        router.middlewares.add(RequestGuardMiddleware(policy: hostPolicy, rejections: rejections))
        if let token = configuration.token {
            router.middlewares.add(BearerTokenMiddleware(token: token))
        }
        router.get("healthz") { _, _ in
            "ok\n"
        }
        router.get("readyz") { [sources] _, _ -> Response in
            let readiness = sources.readiness()
            return try Self.json(readiness, status: readiness.ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { [sources, registry] _, _ -> Response in
            await sources.refreshMetrics()
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        let api = router.group("api")
        router.get("api") { [sources, started] _, _ -> Response in
            try Self.json(APIIndex(hubID: sources.hubID, storePath: sources.storePath, startedMs: started))
        }
        api.get("outbox") { [sources] request, _ -> Response in
            var stats = try await sources.outboxStats()
            // The per-device list is for finding the device that fills the store, not an export.
            let limit = request.uri.queryParameters.get("devices", as: Int.self) ?? 100
            stats.devices = Array(stats.devices.prefix(max(0, limit)))
            return try Self.json(stats)
        }
        api.get("outbox/peek") { [sources] request, _ -> Response in
            // What `edge-gateway outbox peek` shows: the next events to be sent, payloads as text.
            let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 10, 1), 1000)
            let device: String? = request.uri.queryParameters.get("device").map { String($0) }
            let events = try await sources.outboxPeek(device, limit)
            return try Self.json(events.map(PeekedEvent.init))
        }
        api.get("devices") { [sources] _, _ -> Response in
            try Self.json(sources.devices())
        }
        api.post("devices") { [sources] request, context -> Response in
            try await Self.register(request, context: context, sources: sources)
        }
        api.get("registrations") { [sources] _, _ -> Response in
            guard let registrations = sources.registrations else {
                return try Self.problem("registration is off (registration.enabled)", status: .notFound)
            }
            return try Self.json(await registrations.needingAttention().map(RegistrationSummary.init))
        }
        api.get("ml/endpoints") { [sources] _, _ -> Response in
            try Self.json(sources.mlEndpoints().map(EndpointSummary.init))
        }
        api.get("status") { [self] _, _ -> Response in
            let hub = StatusPage.Hub(
                sources: sources, stats: await outboxStats(maxAge: .zero), onlineSeconds: configuration.deviceOnlineSeconds,
                history: history)
            return try Self.json(StatusPage.Snapshot(
                hubID: sources.hubID, readiness: sources.readiness(), depth: sources.outboxDepth(),
                endpoints: sources.mlEndpoints().map(EndpointSummary.init), history: history.all, recent: live.recent.all, hub: hub))
        }
        addCommandRoutes(to: api)
        addShadowRoutes(to: api)
        live.addRoutes(to: router)
        router.get("/") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            headers[.contentSecurityPolicy] = StatusPage.contentSecurityPolicy
            headers[.init("X-Frame-Options")!] = "DENY"
            headers[.init("Referrer-Policy")!] = "no-referrer"
            headers[.xContentTypeOptions] = "nosniff"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: StatusPage.document)))
        }
        return router
    }

    /// `POST /api/devices` with `{"deviceId", "requestId"?, "userId", "type", "premium"?}`: the
    /// registration saga, answered like `REGISTRATION_RESULT` (201 registered, 202 pending, 400
    /// rejected, 429 rate limited, 503 busy, 409 failed). A missing `requestId` gets a new UUID (the call is then not idempotent).
    static func register(_ request: Request, context: Context, sources: AdminSources) async throws -> Response {
        guard let registrations = sources.registrations else {
            return try problem("registration is off (registration.enabled)", status: .notFound)
        }
        let body = try await request.body.collect(upTo: 4096)
        guard var fields = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            rejectedBodies.increment()
            return try problem("the body must be a JSON object of at most 4096 bytes", status: .badRequest)
        }
        guard let text = fields["deviceId"] as? String, let device = DeviceID(text) else {
            rejectedBodies.increment()
            return try problem("deviceId must be 1–64 characters of A-Z a-z 0-9 _ -", status: .badRequest)
        }
        if fields["requestId"] == nil { fields["requestId"] = UUID().uuidString.lowercased() }
        fields["deviceId"] = nil
        let payload = try JSONSerialization.data(withJSONObject: fields)
        let result = await registrations.register(device, Array(payload))
        let status: HTTPResponse.Status =
            switch result.status {
            case .registered: .created
            case .pending: .accepted
            case .rejected where result.reason == RegistrationResult.rateLimited: .tooManyRequests
            case .rejected where result.reason == RegistrationResult.busy: .serviceUnavailable
            case .rejected: .badRequest
            case .failed: .conflict
            }
        return try Self.json(result, status: status)
    }

    /// `POST /api/devices` bodies refused before the registration (the rest are counted there).
    static let rejectedBodies = Counter(label: "gateway.admin.requests.rejected.total", dimensions: [("reason", "invalid_body")])

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    static func problem(_ message: String, status: HTTPResponse.Status) throws -> Response {
        try json(["error": message], status: status)
    }
}

/// The bound port, set once the server runs.
private final class BoundPort: Sendable {
    private let port = Mutex<Int?>(nil)
    var value: Int? { port.withLock { $0 } }
    func set(_ value: Int) { port.withLock { $0 = value } }
}
