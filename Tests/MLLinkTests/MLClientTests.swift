import BrokerTestSupport
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import MLLink
import Synchronization
import Testing

extension Array where Element: Sendable {
    /// The elements as an async sequence, one after the other.
    var async: AsyncStream<Element> {
        AsyncStream { continuation in
            for element in self { continuation.yield(element) }
            continuation.finish()
        }
    }
}

/// A scripted ML service on a loopback port: real gRPC over HTTP/2, as the gateway meets it.
/// "slow …" answers after 2 s, "refuse …" fails with INVALID_ARGUMENT, anything else is
/// answered at once with an intent named after the text.
struct ScriptedMLService: Edge_Ml_V1_MLService.SimpleServiceProtocol {
    /// Sent back as `replyText`, so a test sees which server answered.
    var name = "ok"

    func analyzeIntent(request: Edge_Ml_V1_IntentRequest, context: ServerContext) async throws -> Edge_Ml_V1_IntentResponse {
        if request.text.hasPrefix("slow") { try await Task.sleep(for: .seconds(2)) }
        if request.text.hasPrefix("refuse") { throw RPCError(code: .invalidArgument, message: "no such thing") }
        return .with {
            $0.intent = "intent:" + request.text
            $0.confidence = 0.75
            $0.entities = ["device": request.deviceID, "user": request.userID] .merging(request.context) { a, _ in a }
            $0.replyText = name
        }
    }

    func transcribeStream(
        request: RPCAsyncSequence<Edge_Ml_V1_AudioChunk, any Error>, response: RPCWriter<Edge_Ml_V1_TranscriptionResult>,
        context: ServerContext
    ) async throws {
        // Config first (else INVALID_ARGUMENT), then a partial per chunk, a final at the end.
        var configuration: Edge_Ml_V1_AudioConfig?
        var bytes = 0
        for try await chunk in request {
            switch chunk.kind {
            case .config(let config) where configuration == nil:
                configuration = config
            case .data(let data) where configuration != nil:
                bytes += data.count
                try await response.write(.with { $0.text = "heard \(bytes)"; $0.confidence = 0.5 })
            default:
                throw RPCError(code: .invalidArgument, message: "config first, once")
            }
        }
        guard let configuration else { throw RPCError(code: .invalidArgument, message: "no config") }
        try await response.write(.with {
            $0.text = "\(name) \(configuration.codec) \(configuration.sampleRate) \(configuration.language) \(configuration.sessionID): \(bytes) bytes"
            $0.isFinal = true
            $0.confidence = 0.9
        })
    }
}

/// A loopback port nothing listens on (the tests' one free-port helper).
func closedPort() async throws -> Int {
    try FreePort.next()
}

/// Runs `body` with a scripted server on a free loopback port and a client for it.
func withMLServer(
    intentTimeout: Duration = .seconds(5), _ body: @Sendable (MLClient) async throws -> Void
) async throws {
    let server = GRPCServer(
        transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: 0), transportSecurity: .plaintext),
        services: [ScriptedMLService()])
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await server.serve() }
        let port = try #require(try await server.listeningAddress?.ipv4?.port)
        let client = try MLClient(
            endpoint: MLEndpoint(host: "127.0.0.1", port: port), intentTimeout: intentTimeout,
            logger: Logger(label: "ml-test"))
        group.addTask { try await client.run() }
        try await body(client)
        client.shutDown()
        server.beginGracefulShutdown()
    }
}

@Suite(.timeLimit(.minutes(1))) struct MLClientTests {
    @Test func analyzeIntentCarriesTheRequestAndReturnsTheAnswer() async throws {
        try await withMLServer { client in
            let analysis = try await client.analyzeIntent(
                text: "lights on", context: ["room": "kitchen"], deviceID: "dev-1", userID: "u-7")
            #expect(analysis == IntentAnalysis(
                intent: "intent:lights on", confidence: 0.75,
                entities: ["device": "dev-1", "user": "u-7", "room": "kitchen"], replyText: "ok"))
        }
    }

    @Test func audioStreamsWithItsConfigAndResultsComeBackInOrder() async throws {
        try await withMLServer { client in
            let chunks: [[UInt8]] = (1...5).map { Array(repeating: UInt8($0), count: 100 * $0) }
            let results = Mutex<[Transcription]>([])
            let configuration = AudioStreamConfiguration(
                codec: "opus", sampleRate: 16000, channels: 1, language: "en-US", deviceID: "dev-1", sessionID: "s-1")
            try await client.transcribe(configuration: configuration, audio: chunks.async) { result in
                results.withLock { $0.append(result) }
            }
            let received = results.withLock { $0 }
            #expect(received.map(\.text) == ["heard 100", "heard 300", "heard 600", "heard 1000", "heard 1500", "ok opus 16000 en-US s-1: 1500 bytes"])
            #expect(received.map(\.isFinal) == [false, false, false, false, false, true])
        }
    }

    @Test func aSlowAnswerEndsAtTheDeadlineAndMayBeRetried() async throws {
        try await withMLServer(intentTimeout: .milliseconds(200)) { client in
            let error = await #expect(throws: MLError.self) {
                try await client.analyzeIntent(text: "slow one", deviceID: "dev-1", userID: "u-1")
            }
            #expect(error?.code == .deadlineExceeded)
            #expect(error?.isRetriable == true)
        }
    }

    @Test func aRefusedRequestIsNotRetried() async throws {
        try await withMLServer { client in
            let error = await #expect(throws: MLError.self) {
                try await client.analyzeIntent(text: "refuse this", deviceID: "dev-1", userID: "u-1")
            }
            #expect(error?.code == .rejected)
            #expect(error?.isRetriable == false)
        }
    }

    @Test func anEndpointWithNothingListeningFailsRetriably() async throws {
        let port = try await closedPort()
        let client = try MLClient(
            endpoint: MLEndpoint(host: "127.0.0.1", port: port), intentTimeout: .milliseconds(500),
            logger: Logger(label: "ml-test"))
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await client.run() }
            let error = await #expect(throws: MLError.self) {
                try await client.analyzeIntent(text: "hello", deviceID: "dev-1", userID: "u-1")
            }
            #expect(error?.isRetriable == true, "\(String(describing: error))")
            client.shutDown()
        }
    }

    @Test(arguments: [
        ("127.0.0.1:50051", MLEndpoint(host: "127.0.0.1", port: 50051)),
        ("ml.local:443", MLEndpoint(host: "ml.local", port: 443)),
        ("[::1]:7000", MLEndpoint(host: "::1", port: 7000)),
    ])
    func endpointsParse(text: String, expected: MLEndpoint) {
        #expect(MLEndpoint(text) == expected)
        #expect(MLEndpoint(text)?.description == text)
    }

    @Test(arguments: ["", "host", "host:", ":80", "host:0", "host:70000", "host:http"])
    func malformedEndpointsAreRefused(text: String) {
        #expect(MLEndpoint(text) == nil)
    }
}
