import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import MLLink
import Testing

/// Scripted servers named by their reply, on given loopback ports (0: any free one).
final class ScriptedServers: Sendable {
    let servers: [GRPCServer<HTTP2ServerTransport.Posix>]

    init(names: [String], ports: [Int]? = nil) {
        servers = names.enumerated().map { index, name in
            GRPCServer(
                transport: .http2NIOPosix(
                    address: .ipv4(host: "127.0.0.1", port: ports?[index] ?? 0), transportSecurity: .plaintext),
                services: [ScriptedMLService(name: name)])
        }
    }

    func ports() async throws -> [Int] {
        var ports: [Int] = []
        for server in servers { ports.append(try #require(try await server.listeningAddress?.ipv4?.port)) }
        return ports
    }

    func stop() { for server in servers { server.beginGracefulShutdown() } }
}

func pool(ports: [Int], breaker: CircuitBreaker.Configuration) throws -> MLEndpointPool {
    let clients = try ports.map {
        try MLClient(
            endpoint: MLEndpoint(host: "127.0.0.1", port: $0), intentTimeout: .seconds(2), logger: Logger(label: "ml-test"))
    }
    return MLEndpointPool(clients: clients, breaker: breaker, logger: Logger(label: "ml-test"))
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
            let pool = try pool(ports: [ports[0], dead, ports[1]], breaker: breaker)
            group.addTask { try await pool.run() }
            var answeredBy: [String] = []
            for call in 0..<12 {
                let analysis = try await pool.analyzeIntent(text: "call \(call)", deviceID: "dev-1", userID: "u-1")
                answeredBy.append(analysis.replyText)
            }
            #expect(Set(answeredBy) == ["a", "b"], "every call answered, by the live endpoints")
            #expect(pool.breakerStates.map(\.state) == [.closed, .open, .closed])
            pool.shutDown()
            live.stop()
        }
    }

    @Test func withEveryBreakerOpenCallsFailAtOnce() async throws {
        let deadPorts = [try await closedPort(), try await closedPort()]
        let pool = try pool(ports: deadPorts, breaker: breaker)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await pool.run() }
            // Each call tries two endpoints: two calls give each breaker its two failures.
            for _ in 0..<2 {
                await #expect(throws: MLError.self) { try await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u") }
            }
            #expect(pool.breakerStates.map(\.state) == [.open, .open])
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
        let pool = try pool(ports: [port], breaker: quick)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await pool.run() }
            await #expect(throws: MLError.self) { try await pool.analyzeIntent(text: "x", deviceID: "d", userID: "u") }
            #expect(pool.breakerStates.map(\.state) == [.open])

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
            #expect(pool.breakerStates.map(\.state) == [.closed])
            pool.shutDown()
            back.stop()
        }
    }
}
