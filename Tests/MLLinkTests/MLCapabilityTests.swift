import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import Synchronization
import Testing

@testable import MLLink

/// A real gRPC client to a real (scripted) server that says it offers only some calls, as a
/// Wyoming server's `info` may: the pool must send it nothing else.
final class OfferingOnly: MLBackend {
    let base: MLClient
    let capabilities: MLCapabilities
    var endpoint: MLEndpoint { base.endpoint }

    init(_ base: MLClient, offering capabilities: MLCapabilities) {
        self.base = base
        self.capabilities = capabilities
    }

    func run() async throws { try await base.run() }
    func shutDown() { base.shutDown() }
    func checkHealth(timeout: Duration) async -> MLHealth { await base.checkHealth(timeout: timeout) }
    func transcribe<Audio: AsyncSequence & Sendable>(
        configuration: AudioStreamConfiguration, audio: Audio, onResult: @escaping @Sendable (Transcription) async -> Void
    ) async throws(MLError) where Audio.Element == [UInt8] {
        try await base.transcribe(configuration: configuration, audio: audio, onResult: onResult)
    }
    func analyzeIntent(text: String, context: [String: String], deviceID: String, userID: String) async throws(MLError) -> IntentAnalysis {
        try await base.analyzeIntent(text: text, context: context, deviceID: deviceID, userID: userID)
    }
}

@Suite(.timeLimit(.minutes(1))) struct MLCapabilityTests {
    @Test func aCallGoesOnlyToEndpointsThatOfferIt() async throws {
        let live = ScriptedServers(names: ["asr-only", "both"])
        try await withThrowingDiscardingTaskGroup { group in
            for server in live.servers { group.addTask { try await server.serve() } }
            let ports = try await live.ports()
            var configuration = MLConfiguration()
            configuration.targets = ports.map { .address(MLEndpoint(host: "127.0.0.1", port: $0)) }
            configuration.balancing = .roundRobin
            configuration.shutdownGrace = .seconds(1)
            let asrOnly = ports[0]
            let pool = MLEndpointPool(configuration: configuration, logger: Logger(label: "ml-test")) { endpoint, authority, settings in
                let client = try MLClient(endpoint: endpoint, authority: authority, logger: Logger(label: "ml-test"))
                return endpoint.port == asrOnly ? OfferingOnly(client, offering: .transcription) : client
            }
            group.addTask { await pool.run() }
            var answeredBy: Set<String> = []
            for call in 0..<6 {
                answeredBy.insert(try await pool.analyzeIntent(text: "call \(call)", deviceID: "dev-1", userID: "u-1").replyText)
            }
            #expect(answeredBy == ["both"], "intents only to the endpoint that offers them")
            #expect(pool.endpoints.map(\.capabilities) == [.transcription, .all])
            pool.shutDown()
            live.stop()
        }
    }
}
