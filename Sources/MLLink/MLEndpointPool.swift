import Foundation
import GatewayCore
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The ML service behind several endpoints (`ml.endpoints`).
///
/// - **Endpoints**: `host:port` entries are used as given; every address a `dns:///name:port`
///   entry resolves to is an endpoint of its own, resolved again every `ml.resolveIntervalSeconds`
///   (new addresses join, gone ones are closed once their calls finish).
/// - **Balancing**: each call goes to a healthy endpoint whose breaker lets it through, in turn
///   (`roundRobin`) or the one with the fewest calls under way (`leastOutstanding`).
/// - **Health**: `grpc.health.v1.Health/Check` every `ml.healthCheckIntervalSeconds` where the
///   server offers it; an endpoint that says NOT_SERVING or cannot be reached is skipped while
///   others are healthy, and an unreachable one counts a failure against its breaker. Without
///   the health service, call outcomes decide (the breaker).
/// - **Breakers**: one per endpoint (see ``CircuitBreaker``); changes are logged at info and kept
///   in the `gateway.ml.breaker.state` gauge (0 closed, 1 half-open, 2 open).
/// - **Retries**: `AnalyzeIntent` that failed retriably is tried once on another endpoint. A
///   transcription that failed retriably before the service returned anything is moved to
///   another endpoint with its audio replayed (``ReplayableAudio``); once results have come back
///   it is not retried. When no breaker lets a call through, calls fail at once.
///
/// The pool owns the endpoints and their clients; the jobs are in files of their own: discovery
/// (``MLDiscovery``), the choice of endpoint (``MLBalancer``, a value type), health checks
/// (`MLEndpointPool+Health.swift`) and metrics (``MLMetrics``, made once per endpoint).
public final class MLEndpointPool: Service, Sendable {
    /// The settings in force (``update(_:)`` replaces them).
    public var configuration: MLConfiguration { settings.withLock { $0 } }
    private let settings: Mutex<MLConfiguration>
    let state: Mutex<State>
    let logger: Logger
    private let makeClient: @Sendable (MLEndpoint, _ authority: String?, MLConfiguration) throws -> any MLBackend

    /// One endpoint as the status page and metrics see it.
    public struct EndpointStatus: Sendable, Equatable {
        public var endpoint: MLEndpoint
        /// The `ml.endpoints` entry it came from.
        public var source: String
        public var breaker: CircuitBreaker.State
        public var health: MLHealth?
        /// What the endpoint offers.
        public var capabilities: MLCapabilities
        /// A Wyoming server's programs, models and languages (nil for gRPC, and before its first `describe`).
        public var details: MLEndpointDetails?
        public var outstanding: Int
    }

    struct Member: MLBalancerEntry {
        let client: any MLBackend
        let source: MLConfiguration.Target
        var breaker: CircuitBreaker
        var health: MLHealth?
        var outstanding = 0
        var runTask: Task<Void, Never>?

        /// Skipped while others are up: the health service said so, or could not be reached.
        var healthDown: Bool { health == .notServing || health == .unreachable }
    }

    struct State {
        var members: [MLEndpoint: Member] = [:]
        /// Pick order and turn (see ``MLBalancer``).
        var balancer = MLBalancer()
        /// Every endpoint's metrics, made when it first joined; kept when it leaves (its series
        /// stay in the exporter anyway, and a call under way may still count on it).
        var metrics: [MLEndpoint: MLMetrics] = [:]
        var stopping = false
        var maintenance: Task<Void, Never>?
    }

    public convenience init(configuration: MLConfiguration, logger: Logger) {
        self.init(configuration: configuration, logger: logger) { endpoint, authority, settings in
            if endpoint.kind == .wyoming {
                return WyomingBackend(
                    endpoint: endpoint, intentTimeout: settings.intentTimeout, transcriptTimeout: settings.wyomingTranscriptTimeout,
                    logger: logger)
            }
            return try MLClient(
                endpoint: endpoint, authority: authority, tls: settings.tls, intentTimeout: settings.intentTimeout,
                keepalive: settings.keepalive, logger: logger)
        }
    }

    init(
        configuration: MLConfiguration, logger: Logger,
        makeClient: @escaping @Sendable (MLEndpoint, String?, MLConfiguration) throws -> any MLBackend
    ) {
        settings = Mutex(configuration)
        self.logger = logger
        self.makeClient = makeClient
        state = Mutex(State())
        for target in configuration.targets {
            if let endpoint = target.endpoint { add(endpoint, source: target, authority: nil) }
        }
    }

    @discardableResult
    private func add(_ endpoint: MLEndpoint, source: MLConfiguration.Target, authority: String?) -> Bool {
        let client: any MLBackend
        let configuration = configuration
        do {
            client = try makeClient(endpoint, authority, configuration)
        } catch {
            logger.error("cannot set up an ML endpoint", metadata: ["ml.endpoint": "\(endpoint)", "error": "\(error)"])
            return false
        }
        let added = state.withLock { state -> MLMetrics? in
            guard !state.stopping, state.members[endpoint] == nil else { return nil }
            var member = Member(client: client, source: source, breaker: CircuitBreaker(configuration: configuration.breaker))
            member.runTask = Task { try? await client.run() }
            state.members[endpoint] = member
            state.balancer.add(endpoint)
            if state.metrics[endpoint] == nil { state.metrics[endpoint] = MLMetrics(endpoint: endpoint) }
            return state.metrics[endpoint]
        }
        added?.record(.closed)
        return added != nil
    }

    /// Runs every endpoint's connections, re-resolves `dns:///` entries and checks health, until
    /// graceful shutdown; then lets calls under way finish (up to `shutdownGrace`) and closes
    /// the channels.
    public func run() async {
        let maintenance = Task { await self.maintain() }
        let stopping = state.withLock { state in
            state.maintenance = maintenance
            return state.stopping
        }
        if stopping { maintenance.cancel() }
        await withTaskCancellationOrGracefulShutdownHandler {
            await maintenance.value
        } onCancelOrGracefulShutdown: {
            maintenance.cancel()
        }
        await close()
    }

    /// Closes every endpoint: calls under way may finish within `shutdownGrace`, then the
    /// connections are cancelled.
    public func close() async {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            state.stopping = true
            return state.members.values.compactMap(\.runTask)
        }
        shutDown()
        let grace = configuration.shutdownGrace
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for task in tasks { await task.value } }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            group.cancelAll()
        }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// Refuses new calls on every endpoint, lets calls under way finish, and ends ``run()``.
    public func shutDown() {
        let (clients, maintenance) = state.withLock { state in
            state.stopping = true
            return (state.members.values.map(\.client), state.maintenance)
        }
        maintenance?.cancel()
        for client in clients { client.shutDown() }
    }

    /// Applies new settings while running (configuration reload): endpoints no longer listed are
    /// closed after their calls, new ones join, breakers keep their state under the new
    /// thresholds. When the connection settings change (TLS, keepalive, intent deadline) every
    /// endpoint is set up anew the same way. Returns what changed, for the log.
    @discardableResult
    public func update(_ new: MLConfiguration) async -> [String] {
        let old = settings.withLock { old in
            defer { old = new }
            return old
        }
        var changes: [String] = []
        let reconnect = old.tls != new.tls || old.keepalive != new.keepalive || old.intentTimeout != new.intentTimeout
            || old.wyomingTranscriptTimeout != new.wyomingTranscriptTimeout
        let removed = state.withLock { state -> [(MLEndpoint, any MLBackend)] in
            for endpoint in state.balancer.order { state.members[endpoint]?.breaker.configuration = new.breaker }
            let gone = state.balancer.order.filter { endpoint in
                guard let member = state.members[endpoint] else { return false }
                return reconnect || !new.targets.contains(member.source)
            }
            state.balancer.remove { gone.contains($0) }
            return gone.compactMap { endpoint in state.members.removeValue(forKey: endpoint).map { (endpoint, $0.client) } }
        }
        for (endpoint, client) in removed {
            client.shutDown()
            changes.append("removed \(endpoint)")
        }
        for target in new.targets {
            if let endpoint = target.endpoint, add(endpoint, source: target, authority: nil) {
                changes.append("added \(endpoint)")
            }
        }
        if new.targets.contains(where: { if case .dns = $0 { true } else { false } }) { await resolveNames() }
        if old.breaker != new.breaker { changes.append("breaker settings") }
        if old.balancing != new.balancing { changes.append("balancing \(new.balancing)") }
        if !changes.isEmpty {
            logger.info("ML endpoints reconfigured", metadata: ["ml.changes": "\(changes.joined(separator: ", "))"])
        }
        return changes
    }

    private func maintain() async {
        var nextResolve = ContinuousClock.now
        while !Task.isCancelled {
            let configuration = configuration
            let hasNames = configuration.targets.contains { if case .dns = $0 { true } else { false } }
            if hasNames, ContinuousClock.now >= nextResolve {
                await resolveNames()
                nextResolve = .now + configuration.resolveInterval
            }
            if configuration.healthCheckInterval > .zero {
                await checkHealth()
            }
            var pause = configuration.healthCheckInterval > .zero ? configuration.healthCheckInterval : .seconds(3600)
            if hasNames { pause = min(pause, max(.zero, ContinuousClock.now.duration(to: nextResolve))) }
            try? await Task.sleep(for: pause)
        }
    }

    /// Resolves every `dns:///` entry (``MLDiscovery``); addresses that appeared join, addresses
    /// that went away are closed. A failed resolution keeps the addresses already known.
    func resolveNames() async {
        for target in configuration.targets {
            guard case .dns(let name, let port) = target else { continue }
            let addresses = await MLDiscovery.resolve(name)
            guard !addresses.isEmpty else {
                logger.warning("cannot resolve an ML endpoint name; keeping its known addresses", metadata: ["ml.target": "\(target)"])
                continue
            }
            let known = state.withLock { state in Set(state.members.filter { $0.value.source == target }.keys) }
            let changes = MLDiscovery.changes(addresses: addresses, port: port, known: known)
            for endpoint in changes.added where add(endpoint, source: target, authority: name) {
                logger.info("ML endpoint added", metadata: ["ml.endpoint": "\(endpoint)", "ml.target": "\(target)"])
            }
            for endpoint in changes.removed {
                let removed = state.withLock { state -> (any MLBackend)? in
                    state.balancer.remove { $0 == endpoint }
                    return state.members.removeValue(forKey: endpoint)?.client
                }
                removed?.shutDown()
                logger.info("ML endpoint removed (no longer resolved)", metadata: ["ml.endpoint": "\(endpoint)", "ml.target": "\(target)"])
            }
        }
    }


    /// Every endpoint's state, in pick order.
    public var endpoints: [EndpointStatus] {
        state.withLock { state in
            state.balancer.order.compactMap { endpoint in
                state.members[endpoint].map {
                    EndpointStatus(
                        endpoint: endpoint, source: "\($0.source)", breaker: $0.breaker.state, health: $0.health,
                        capabilities: $0.client.capabilities, details: $0.client.details, outstanding: $0.outstanding)
                }
            }
        }
    }

    /// `AnalyzeIntent` on a healthy endpoint; a retriable failure is tried on one other endpoint
    /// (the request has no side effects). Fails with `unavailable` at once when no breaker lets a
    /// call through.
    public func analyzeIntent(
        text: String, context: [String: String] = [:], deviceID: String, userID: String
    ) async throws(MLError) -> IntentAnalysis {
        var tried: Set<MLEndpoint> = []
        var lastError: MLError?
        for _ in 0..<2 {
            guard let (endpoint, client) = pick(excluding: tried, offering: .intent, from: configuration.intentBackends) else { break }
            tried.insert(endpoint)
            do {
                let analysis = try await client.analyzeIntent(text: text, context: context, deviceID: deviceID, userID: userID)
                finish(endpoint, call: "intent", error: nil)
                return analysis
            } catch {
                finish(endpoint, call: "intent", error: error)
                guard error.isRetriable else { throw error }
                lastError = error
            }
        }
        throw lastError ?? noEndpoint(offering: .intent, from: configuration.intentBackends)
    }

    /// `TranscribeStream` on a healthy endpoint. A retriable failure before any result came back
    /// is moved to one other endpoint, replaying `audio` from its start (while it can be
    /// replayed). Returns the endpoint that served the stream.
    @discardableResult
    public func transcribe(
        configuration audioConfiguration: AudioStreamConfiguration, audio: ReplayableAudio,
        onResult: @escaping @Sendable (Transcription) async -> Void
    ) async throws(MLError) -> MLEndpoint {
        var tried: Set<MLEndpoint> = []
        var lastError: MLError?
        for _ in 0..<2 {
            guard let (endpoint, client) = pick(excluding: tried, offering: .transcription, from: configuration.transcriptionBackends) else { break }
            tried.insert(endpoint)
            let answered = Atomic<Bool>(false)
            do {
                try await client.transcribe(configuration: audioConfiguration, audio: audio.reader()) { result in
                    answered.store(true, ordering: .relaxed)
                    await onResult(result)
                }
                finish(endpoint, call: "transcribe", error: nil)
                return endpoint
            } catch {
                finish(endpoint, call: "transcribe", error: error)
                guard error.isRetriable, !answered.load(ordering: .relaxed), audio.canReplay else { throw error }
                logger.info(
                    "transcription failed before any result; moving it to another ML endpoint",
                    metadata: ["ml.endpoint": "\(endpoint)", "error": "\(error)", "session.id": "\(audioConfiguration.sessionID)"])
                lastError = error
            }
        }
        throw lastError ?? noEndpoint(offering: .transcription, from: configuration.transcriptionBackends)
    }

    private func noEndpoint(offering capability: MLCapabilities, from allowed: MLConfiguration.StepBackends) -> MLError {
        let (count, offering) = state.withLock { state in
            (state.members.count, state.members.filter { allowed.allows($0.key.kind) && $0.value.client.capabilities.contains(capability) }.count)
        }
        let step = capability == .transcription ? "transcription" : "intent"
        if count == 0 { return MLError(.unavailable, "no ML endpoint is configured or resolved (ml.endpoints)") }
        if offering == 0 {
            return MLError(.unavailable, "no ML endpoint offers \(step) (ml.endpoints, ml.\(step); a Wyoming server offers what its last describe said)")
        }
        return MLError(.unavailable, "every ML endpoint's circuit breaker is open")
    }

    /// The endpoint the next call goes to among those of the `allowed` kinds offering `capability`
    /// (`ml.transcription`, `ml.intent`), or nil when no breaker lets one through. Endpoints the
    /// health service reports down are only used when no other is up.
    private func pick(
        excluding tried: Set<MLEndpoint>, offering capability: MLCapabilities, from allowed: MLConfiguration.StepBackends
    ) -> (MLEndpoint, any MLBackend)? {
        let now = ContinuousClock.now
        let balancing = configuration.balancing
        let (picked, change) = state.withLock { state -> ((MLEndpoint, any MLBackend)?, CircuitBreaker.State?) in
            let lacking = state.members.filter { !allowed.allows($0.key.kind) || !$0.value.client.capabilities.contains(capability) }.keys
            guard let (endpoint, change) = state.balancer.pick(
                excluding: tried.union(lacking), from: &state.members, balancing: balancing, at: now)
            else { return (nil, nil) }
            return ((endpoint, state.members[endpoint]!.client), change)
        }
        if let picked, let change { logChange(picked.0, change) }
        return picked
    }

    private func finish(_ endpoint: MLEndpoint, call: String, error: MLError?) {
        let failed = error?.isRetriable ?? false
        let (change, calls) = state.withLock { state -> (CircuitBreaker.State?, Counter?) in
            let calls = state.metrics[endpoint]?.calls(call, error: error)
            guard state.members[endpoint] != nil else { return (nil, calls) }
            if !failed, state.members[endpoint]!.health == .unreachable {
                // A call got through: the endpoint is reachable whatever the last check said.
                state.members[endpoint]!.health = nil
            }
            return (state.balancer.finish(endpoint, in: &state.members, failed: failed, at: .now), calls)
        }
        calls?.increment()
        if let change { logChange(endpoint, change) }
    }

    func logChange(_ endpoint: MLEndpoint, _ state: CircuitBreaker.State) {
        let metrics = self.state.withLock { $0.metrics[endpoint] }
        metrics?.record(state)
        logger.info(
            "ML endpoint circuit breaker \(state.rawValue)",
            metadata: ["ml.endpoint": "\(endpoint)", "ml.breaker": "\(state.rawValue)"])
    }
}
