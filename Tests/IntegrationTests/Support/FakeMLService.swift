import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import MLLink
import Synchronization

/// The ML service as the gateway meets it (CONTRACTS.md §3), scripted: real gRPC over HTTP/2 on a
/// loopback port, written here because the model is not ours.
///
/// `TranscribeStream` checks the stream's shape (config first, then data), sends a partial every
/// `partialEvery` chunks and, once the gateway closes its side, the scripted final transcript.
/// `AnalyzeIntent` answers `intent:{text}` with entities, or waits / fails as scripted. Every call
/// is recorded for the test to inspect.
final class FakeMLService: Sendable {
    struct Script: Sendable {
        var transcript = "turn on the kitchen lights"
        var partialEvery = 10
        var intentDelay: Duration = .zero
        /// Fail every call with this code (e.g. `.unavailable`).
        var failWith: RPCError.Code?
        /// End the stream without a final transcript.
        var closeStreamEarly = false
    }

    struct Stream: Sendable {
        var config: Edge_Ml_V1_AudioConfig
        var chunks: [[UInt8]]
    }

    struct IntentCall: Sendable {
        var request: Edge_Ml_V1_IntentRequest
    }

    let name: String
    let script: Mutex<Script>
    let streams = Mutex<[Stream]>([])
    let intents = Mutex<[IntentCall]>([])
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let serving = Mutex<Task<Void, Never>?>(nil)

    /// - Parameters:
    ///   - port: 0 for any free port.
    ///   - tls: serve TLS with this certificate (for 127.0.0.1 and localhost).
    init(name: String, port: Int = 0, script: Script = Script(), tls: TestCertificates? = nil) {
        self.name = name
        self.script = Mutex(script)
        let service = Service(owner: nil)
        let security: HTTP2ServerTransport.Posix.TransportSecurity =
            if let tls {
                .tls(certificateChain: [.file(path: tls.certFile.path, format: .pem)], privateKey: .file(path: tls.keyFile.path, format: .pem))
            } else {
                .plaintext
            }
        server = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: security),
            services: [service])
        service.owner.withLock { $0 = self }
    }

    /// Serves and returns the port once listening.
    func start() async throws -> Int {
        let server = self.server
        serving.withLock { $0 = Task { try? await server.serve() } }
        guard let port = try await server.listeningAddress?.ipv4?.port else { throw HarnessError("the fake ML server did not listen") }
        return port
    }

    func stop() async {
        server.beginGracefulShutdown()
        let task = serving.withLock { $0 }
        task?.cancel()
        await task?.value
    }

    deinit {
        serving.withLock { $0?.cancel() }
    }

    var streamCount: Int { streams.withLock { $0.count } }
    var intentCount: Int { intents.withLock { $0.count } }

    /// The gRPC side; holds its owner weakly through a lock so the server can be built first.
    final class Service: Edge_Ml_V1_MLService.SimpleServiceProtocol, Sendable {
        let owner: Mutex<FakeMLService?>
        init(owner: FakeMLService?) { self.owner = Mutex(owner) }

        private var fake: FakeMLService {
            get throws {
                guard let fake = owner.withLock({ $0 }) else { throw RPCError(code: .unavailable, message: "shutting down") }
                return fake
            }
        }

        func analyzeIntent(request: Edge_Ml_V1_IntentRequest, context: ServerContext) async throws -> Edge_Ml_V1_IntentResponse {
            let fake = try fake
            let script = fake.script.withLock { $0 }
            fake.intents.withLock { $0.append(IntentCall(request: request)) }
            if let code = script.failWith { throw RPCError(code: code, message: "scripted failure") }
            if script.intentDelay > .zero { try await Task.sleep(for: script.intentDelay) }
            return .with {
                $0.intent = "intent:" + request.text
                $0.confidence = 0.875
                $0.entities = ["room": "kitchen", "server": fake.name]
                $0.replyText = "OK from \(fake.name)"
            }
        }

        func transcribeStream(
            request: RPCAsyncSequence<Edge_Ml_V1_AudioChunk, any Error>, response: RPCWriter<Edge_Ml_V1_TranscriptionResult>,
            context: ServerContext
        ) async throws {
            let fake = try fake
            let script = fake.script.withLock { $0 }
            if let code = script.failWith { throw RPCError(code: code, message: "scripted failure") }
            var config: Edge_Ml_V1_AudioConfig?
            var chunks: [[UInt8]] = []
            defer {
                if let config { fake.streams.withLock { $0.append(Stream(config: config, chunks: chunks)) } }
            }
            for try await chunk in request {
                switch chunk.kind {
                case .config(let value) where config == nil:
                    config = value
                case .data(let data) where config != nil:
                    chunks.append(Array(data))
                    if chunks.count % script.partialEvery == 0 {
                        try await response.write(.with { $0.text = "partial \(chunks.count)"; $0.confidence = 0.4 })
                    }
                    if script.closeStreamEarly, chunks.count >= 3 { return }
                default:
                    throw RPCError(code: .invalidArgument, message: "config first, exactly once, then data")
                }
            }
            guard config != nil else { throw RPCError(code: .invalidArgument, message: "no config") }
            try await response.write(.with { $0.text = script.transcript; $0.isFinal = true; $0.confidence = 0.93 })
        }
    }
}
