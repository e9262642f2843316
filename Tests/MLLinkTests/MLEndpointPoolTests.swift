import GRPCCore
import GatewayCore
import GRPCNIOTransportHTTP2
import Logging
import MLLink
import Synchronization
import Testing

/// A `grpc.health.v1.Health` service that reports a fixed status for the ML service.
struct FixedHealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    var status: Grpc_Health_V1_HealthCheckResponse.ServingStatus

    func check(request: Grpc_Health_V1_HealthCheckRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard request.service == "edge.ml.v1.MLService" || request.service.isEmpty else {
            throw RPCError(code: .notFound, message: "unknown service \(request.service)")
        }
        return .with { $0.status = status }
    }

    func list(request: Grpc_Health_V1_HealthListRequest, context: ServerContext) async throws -> Grpc_Health_V1_HealthListResponse {
        .with { $0.statuses = ["edge.ml.v1.MLService": .with { $0.status = status }] }
    }

    func watch(
        request: Grpc_Health_V1_HealthCheckRequest, response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>, context: ServerContext
    ) async throws {
        throw RPCError(code: .unimplemented, message: "watch is not offered")
    }
}

/// Scripted servers named by their reply, on given loopback ports (0: any free one), optionally
/// with a health service reporting `health`.
final class ScriptedServers: Sendable {
    let servers: [GRPCServer<HTTP2ServerTransport.Posix>]

    init(names: [String], ports: [Int]? = nil, health: [Grpc_Health_V1_HealthCheckResponse.ServingStatus?]? = nil) {
        servers = names.enumerated().map { index, name in
            var services: [any RegistrableRPCService] = [ScriptedMLService(name: name)]
            if let status = health?[index] { services.append(FixedHealthService(status: status)) }
            return GRPCServer(
                transport: .http2NIOPosix(
                    address: .ipv4(host: "127.0.0.1", port: ports?[index] ?? 0), transportSecurity: .plaintext),
                services: services)
        }
    }

    func ports() async throws -> [Int] {
        var ports: [Int] = []
        for server in servers { ports.append(try #require(try await server.listeningAddress?.ipv4?.port)) }
        return ports
    }

    func stop() { for server in servers { server.beginGracefulShutdown() } }
}

func pool(
    ports: [Int], breaker: CircuitBreaker.Configuration, balancing: MLConfiguration.Balancing = .roundRobin,
    healthCheckInterval: Duration = .milliseconds(100)
) -> MLEndpointPool {
    var configuration = MLConfiguration()
    configuration.targets = ports.map { .address(MLEndpoint(host: "127.0.0.1", port: $0)) }
    configuration.breaker = breaker
    configuration.balancing = balancing
    configuration.intentTimeout = .seconds(2)
    configuration.healthCheckInterval = healthCheckInterval
    configuration.shutdownGrace = .seconds(1)
    return MLEndpointPool(configuration: configuration, logger: Logger(label: "ml-test"))
}

/// Polls `condition` every 50 ms for up to `seconds`.
func eventually(seconds: Double = 10, _ condition: () -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return condition()
}

@Suite(.timeLimit(.minutes(1))) struct MLEndpointPoolTests {
    var breaker: CircuitBreaker.Configuration {
        var breaker = CircuitBreaker.Configuration()
        breaker.minimumCalls = 2
        breaker.failureRatio = 0.5
        breaker.openDuration = .seconds(60)
        return breaker
    }

    @Test func aDeadEndpointIsSkippedAndItsBreakerOpens() async throws {
        let live = ScriptedServers(names: ["a", "b"])
        let dead = try await closedPort()
        try await withThrowingDiscardingTaskGroup { group in
            for server in live.servers { group.addTask { try await server.serve() } }
            let ports = try await live.ports()
            let pool = pool(ports: [ports[0], dead, ports[1]], breaker: breaker)
            group.addTask { await pool.run() }
            var answeredBy: [String] = []
            for call in 0..<12 {
                let analysis = try await pool.analyzeIntent(text: "call \(call)", deviceID: "dev-1", userID: "u-1")
                answeredBy.append(analysis.replyText)
            }
            #expect(Set(answeredBy) == ["a", "b"], "every call answered, by the live endpoints")
            // Health checks find it unreachable: it is skipped, and its breaker opens.
            #expect(try await eventually { pool.endpoints.map(\.breaker) == [.closed, .open, .closed] })
            #expect(pool.endpoints[1].health == .unreachable)
            pool.shutDown()
            live.stop()
        }
    }

    @Test func withEveryBreakerOpenCallsFailAtOnce() async throws {
        let deadPorts = [try await closedPort(), try await closedPort()]
        let pool = pool(ports: deadPorts, breaker: breaker)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await pool.run() }
            // Each call tries two endpoints: two calls give each breaker its two failures.
            for _ in 0..<2 {
                await #expect(throws: MLError.self) { try await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u") }
            }
            #expect(pool.endpoints.map(\.breaker) == [.open, .open])
            let error = await #expect(throws: MLError.self) {
                try await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u")
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("circuit breaker is open") == true, "\(String(describing: error))")
            pool.shutDown()
        }
    }

    @Test func anEndpointThatComesBackIsUsedAgainAfterItsProbe() async throws {
        var quick = breaker
        quick.minimumCalls = 1
        quick.openDuration = .milliseconds(200)
        let port = try await closedPort()
        let pool = pool(ports: [port], breaker: quick)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await pool.run() }
            await #expect(throws: MLError.self) { try await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u") }
            #expect(pool.endpoints.map(\.breaker) == [.open])

            let back = ScriptedServers(names: ["back"], ports: [port])
            group.addTask { try await back.servers[0].serve() }
            _ = try await back.ports()
            // Probes go out after each cool-down until the client has reconnected.
            var answer: IntentAnalysis?
            for _ in 0..<50 where answer == nil {
                try await Task.sleep(for: .milliseconds(250))
                answer = try? await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u")
            }
            #expect(answer?.replyText == "back")
            #expect(pool.endpoints.map(\.breaker) == [.closed])
            pool.shutDown()
            back.stop()
        }
    }

    @Test func aStreamThatFailsBeforeAnyResultMovesToAnotherEndpointWithItsAudio() async throws {
        let live = ScriptedServers(names: ["live"])
        let dead = try await closedPort()
        try await withThrowingDiscardingTaskGroup { group in
            for server in live.servers { group.addTask { try await server.serve() } }
            let ports = try await live.ports()
            // No health checks: the first stream goes to the dead endpoint and must be moved.
            let pool = pool(ports: [dead, ports[0]], breaker: breaker, healthCheckInterval: .zero)
            group.addTask { await pool.run() }
            let audio = ReplayableAudio()
            for chunk in 0..<5 { audio.append(Array(repeating: UInt8(chunk), count: 100)) }
            audio.finish()
            let results = Mutex<[Transcription]>([])
            let configuration = AudioStreamConfiguration(
                codec: "opus", sampleRate: 16000, channels: 1, language: "en-US", deviceID: "dev-1", sessionID: "s-1")
            let endpoint = try await pool.transcribe(configuration: configuration, audio: audio) { result in
                results.withLock { $0.append(result) }
            }
            #expect(endpoint.port == ports[0])
            let final = results.withLock { $0.last }
            #expect(final?.isFinal == true)
            #expect(final?.text == "live opus 16000 en-US s-1: 500 bytes", "all the audio reached the second endpoint")
            pool.shutDown()
            live.stop()
        }
    }

    @Test func anEndpointWhoseHealthServiceSaysNotServingIsSkipped() async throws {
        let servers = ScriptedServers(names: ["sick", "well"], health: [.notServing, .serving])
        try await withThrowingDiscardingTaskGroup { group in
            for server in servers.servers { group.addTask { try await server.serve() } }
            let ports = try await servers.ports()
            let pool = pool(ports: ports, breaker: breaker)
            group.addTask { await pool.run() }
            #expect(try await eventually { pool.endpoints.map(\.health) == [.notServing, .serving] })
            for _ in 0..<6 {
                let analysis = try await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u")
                #expect(analysis.replyText == "well")
            }
            #expect(pool.endpoints.map(\.breaker) == [.closed, .closed], "NOT_SERVING is not a failure of the endpoint")
            pool.shutDown()
            servers.stop()
        }
    }

    @Test func aDNSNameBecomesOneEndpointPerAddress() async throws {
        let servers = ScriptedServers(names: ["named"])
        try await withThrowingDiscardingTaskGroup { group in
            for server in servers.servers { group.addTask { try await server.serve() } }
            let port = try await servers.ports()[0]
            var configuration = MLConfiguration()
            configuration.targets = [try #require(MLConfiguration.Target("dns:///localhost:\(port)"))]
            configuration.healthCheckInterval = .milliseconds(100)
            configuration.resolveInterval = .seconds(1)
            let pool = MLEndpointPool(configuration: configuration, logger: Logger(label: "ml-test"))
            group.addTask { await pool.run() }
            #expect(try await eventually { pool.endpoints.contains { $0.endpoint == MLEndpoint(host: "127.0.0.1", port: port) } })
            #expect(pool.endpoints.allSatisfy { $0.source == "dns:///localhost:\(port)" })
            // localhost may also resolve to ::1, where nothing listens: that one is skipped.
            for _ in 0..<4 {
                let analysis = try await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u")
                #expect(analysis.replyText == "named")
            }
            pool.shutDown()
            servers.stop()
        }
    }

    @Test func leastOutstandingSendsCallsAwayFromABusyEndpoint() async throws {
        let servers = ScriptedServers(names: ["a", "b"])
        try await withThrowingDiscardingTaskGroup { group in
            for server in servers.servers { group.addTask { try await server.serve() } }
            let ports = try await servers.ports()
            let pool = pool(ports: ports, breaker: breaker, balancing: .leastOutstanding, healthCheckInterval: .zero)
            group.addTask { await pool.run() }
            let slow = Task { try await pool.analyzeIntent(text: "slow", deviceID: "d", userID: "u") }
            #expect(try await eventually { pool.endpoints.map(\.outstanding).reduce(0, +) == 1 })
            let busy = pool.endpoints.first { $0.outstanding == 1 }!.endpoint
            for _ in 0..<4 {
                let analysis = try await pool.analyzeIntent(text: "quick", deviceID: "d", userID: "u")
                #expect(analysis.replyText == (busy.port == ports[0] ? "b" : "a"))
            }
            _ = try? await slow.value  // 2 s against a 2 s deadline: either way
            pool.shutDown()
            servers.stop()
        }
    }
}
