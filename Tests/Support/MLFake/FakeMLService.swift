import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import MLLink
import Synchronization

/// The ML service as the gateway meets it (CONTRACTS.md §3), scripted: real gRPC over HTTP/2 on a
/// loopback port, for the integration tests and `voice-bench` (the model is not ours, so a fake
/// stands in for it; the gateway's side of the wire is real).
///
/// `TranscribeStream` checks the stream's shape (config first, then data), sends a partial every
/// `partialEvery` chunks and, once the gateway closes its side, the scripted final transcript.
/// `AnalyzeIntent` answers `intent:{text}` with entities, or waits / fails as scripted. Every call
/// is recorded for the test to inspect.
public final class FakeMLService: Sendable {
    public struct Script: Sendable {
        public var transcript = "turn on the kitchen lights"
        public var partialEvery = 10
        public var intentDelay: Duration = .zero
        /// The `reply_text` of every answer; nil: "OK from {name}".
        public var replyText: String?
        /// Fail every call with this code (e.g. `.unavailable`).
        public var failWith: RPCError.Code?
        /// End the stream without a final transcript.
        public var closeStreamEarly = false
        /// Stop reading the audio after this many chunks and hold the stream open (a stalled
        /// service: HTTP/2 flow control then stops the gateway's sending).
        public var stallAfterChunks: Int?
        /// Keep only the arrival times of chunks, not their bytes (long benchmarks).
        public var keepChunkBytes = true

        public init() {}
    }

    /// One `TranscribeStream` as it arrived.
    public struct Stream: Sendable {
        public var config: Edge_Ml_V1_AudioConfig
        public var chunks: [[UInt8]]
        /// When each chunk arrived.
        public var arrivals: [ContinuousClock.Instant]
        /// When the gateway closed its side (after the last chunk).
        public var endedAt: ContinuousClock.Instant?
    }

    /// One `AnalyzeIntent` call, with when its answer left.
    public struct IntentCall: Sendable {
        public var request: Edge_Ml_V1_IntentRequest
        public var answeredAt: ContinuousClock.Instant?
    }

    public let name: String
    public let script: Mutex<Script>
    /// Streams that ended, in the order they ended.
    public let streams = Mutex<[Stream]>([])
    public let intents = Mutex<[IntentCall]>([])
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let serving = Mutex<Task<Void, Never>?>(nil)

    /// - Parameters:
    ///   - port: 0 for any free port.
    ///   - tls: serve TLS with this certificate (for 127.0.0.1 and localhost).
    public init(name: String, port: Int = 0, script: Script = Script(), tls: (certFile: String, keyFile: String)? = nil) {
        self.name = name
        self.script = Mutex(script)
        let service = Service(owner: nil)
        let security: HTTP2ServerTransport.Posix.TransportSecurity =
            if let tls {
                .tls(certificateChain: [.file(path: tls.certFile, format: .pem)], privateKey: .file(path: tls.keyFile, format: .pem))
            } else {
                .plaintext
            }
        server = GRPCServer(
            transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: port), transportSecurity: security),
            services: [service])
        service.owner.withLock { $0 = self }
    }

    /// Serves and returns the port once listening.
    public func start() async throws -> Int {
        let server = self.server
        serving.withLock { $0 = Task { try? await server.serve() } }
        guard let port = try await server.listeningAddress?.ipv4?.port else {
            throw RPCError(code: .unavailable, message: "the fake ML server did not listen")
        }
        return port
    }

    /// Shuts the server down gracefully and waits for it. The serving task is cancelled only if that
    /// takes more than 5 s: cancelling it while a connection is being accepted (a daemon that keeps
    /// reconnecting, say) traps in NIO ("Deinited NIOAsyncWriter without calling finish()", swift-nio
    /// #2637: the accepted channel is never served), and a graceful shutdown stops accepting first.
    public func stop() async {
        server.beginGracefulShutdown()
        guard let task = serving.withLock({ $0 }) else { return }
        let fallback = Task {
            try? await Task.sleep(for: .seconds(5))
            if !Task.isCancelled { task.cancel() }
        }
        await task.value
        fallback.cancel()
    }

    deinit {
        serving.withLock { $0?.cancel() }
    }

    public var streamCount: Int { streams.withLock { $0.count } }
    public var intentCount: Int { intents.withLock { $0.count } }

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
            let index = fake.intents.withLock { intents in
                intents.append(IntentCall(request: request))
                return intents.count - 1
            }
            if let code = script.failWith { throw RPCError(code: code, message: "scripted failure") }
            if script.intentDelay > .zero { try await Task.sleep(for: script.intentDelay) }
            let response = Edge_Ml_V1_IntentResponse.with {
                $0.intent = "intent:" + request.text
                $0.confidence = 0.875
                $0.entities = ["room": "kitchen", "server": fake.name]
                $0.replyText = script.replyText ?? "OK from \(fake.name)"
            }
            fake.intents.withLock { $0[index].answeredAt = .now }
            return response
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
            var arrivals: [ContinuousClock.Instant] = []
            var endedAt: ContinuousClock.Instant?
            defer {
                if let config {
                    fake.streams.withLock { $0.append(Stream(config: config, chunks: chunks, arrivals: arrivals, endedAt: endedAt)) }
                }
            }
            for try await chunk in request {
                switch chunk.kind {
                case .config(let value) where config == nil:
                    config = value
                case .data(let data) where config != nil:
                    arrivals.append(.now)
                    chunks.append(script.keepChunkBytes ? Array(data) : [])
                    if script.partialEvery > 0, chunks.count % script.partialEvery == 0 {
                        try await response.write(.with { $0.text = "partial \(chunks.count)"; $0.confidence = 0.4 })
                    }
                    if script.closeStreamEarly, chunks.count >= 3 { return }
                    if let stall = script.stallAfterChunks, chunks.count >= stall {
                        while !Task.isCancelled { try await Task.sleep(for: .seconds(1)) }
                        return
                    }
                default:
                    throw RPCError(code: .invalidArgument, message: "config first, exactly once, then data")
                }
            }
            endedAt = .now
            guard config != nil else { throw RPCError(code: .invalidArgument, message: "no config") }
            try await response.write(.with { $0.text = script.transcript; $0.isFinal = true; $0.confidence = 0.93 })
        }
    }
}
