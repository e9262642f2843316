import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// A gRPC client for one ML endpoint (`edge.ml.v1.MLService`, CONTRACTS.md §3) over HTTP/2 on
/// TCP, plaintext.
///
/// ``run()`` keeps the connection (reconnecting with backoff, HTTP/2 keepalive) until the task is
/// cancelled or ``shutDown()`` is called; calls need it running.
///
/// ```swift
/// let client = try MLClient(endpoint: MLEndpoint(host: "127.0.0.1", port: 50051), logger: logger)
/// async let connections: Void = client.run()
/// let analysis = try await client.analyzeIntent(text: "lights on", deviceID: "dev-1", userID: "u-1")
/// ```
///
/// Several endpoints, balancing and circuit breakers are built on top of this (issue 4).
public final class MLClient: Sendable {
    public let endpoint: MLEndpoint
    /// Deadline of an `AnalyzeIntent` call (`ml.intentTimeoutMs`).
    public let intentTimeout: Duration
    private let grpc: GRPCClient<HTTP2ClientTransport.Posix>
    private let service: Edge_Ml_V1_MLService.Client<HTTP2ClientTransport.Posix>
    private let logger: Logger

    /// - Parameters:
    ///   - intentTimeout: deadline of `AnalyzeIntent` (default 5 s).
    ///   - keepalive: HTTP/2 PING interval while idle (default 30 s); a PING unanswered for
    ///     10 s closes the connection.
    public init(
        endpoint: MLEndpoint, intentTimeout: Duration = .seconds(5), keepalive: Duration = .seconds(30), logger: Logger
    ) throws {
        self.endpoint = endpoint
        self.intentTimeout = intentTimeout
        self.logger = logger
        let transport = try HTTP2ClientTransport.Posix(
            target: .dns(host: endpoint.host, port: endpoint.port),
            transportSecurity: .plaintext,
            config: .defaults { config in
                config.connection.keepalive = .init(time: keepalive, timeout: .seconds(10), allowWithoutCalls: true)
            })
        grpc = GRPCClient(transport: transport)
        service = Edge_Ml_V1_MLService.Client(wrapping: grpc)
    }

    /// Runs the client's connections until ``shutDown()`` or cancellation.
    public func run() async throws {
        try await grpc.runConnections()
    }

    /// Lets calls under way finish, refuses new ones, then ends ``run()``.
    public func shutDown() {
        grpc.beginGracefulShutdown()
    }

    /// Streams audio to `TranscribeStream`: the configuration first, then every chunk of `audio`
    /// as it arrives (one Opus packet or a run of PCM bytes each); each result the service sends
    /// goes to `onResult`, in order. Returns when the service ends its side, normally after the
    /// final result for the ended audio. A stream under way is not retried elsewhere: its audio
    /// cannot be replayed, so the caller decides (CONTRACTS.md §1 gives the device an `ERROR`).
    public func transcribe<Audio: AsyncSequence & Sendable>(
        configuration: AudioStreamConfiguration, audio: Audio,
        onResult: @escaping @Sendable (Transcription) async -> Void
    ) async throws(MLError) where Audio.Element == [UInt8] {
        let config = Edge_Ml_V1_AudioChunk.with {
            $0.config = .with {
                $0.codec = configuration.codec
                $0.sampleRate = configuration.sampleRate
                $0.channels = configuration.channels
                $0.language = configuration.language
                $0.deviceID = configuration.deviceID
                $0.sessionID = configuration.sessionID
            }
        }
        do {
            try await service.transcribeStream(
                requestProducer: { writer in
                    try await writer.write(config)
                    for try await chunk in audio {
                        try await writer.write(.with { $0.data = Data(chunk) })
                    }
                },
                onResponse: { response in
                    for try await result in response.messages {
                        await onResult(Transcription(text: result.text, isFinal: result.isFinal, confidence: result.confidence))
                    }
                })
        } catch let error as RPCError {
            throw MLError(error)
        } catch {
            throw MLError(.failed, "\(error)")
        }
    }

    /// Asks the service what `text` means. Fails with ``MLError`` (`deadlineExceeded` after
    /// ``intentTimeout``).
    public func analyzeIntent(
        text: String, context: [String: String] = [:], deviceID: String, userID: String
    ) async throws(MLError) -> IntentAnalysis {
        let request = Edge_Ml_V1_IntentRequest.with {
            $0.text = text
            $0.context = context
            $0.deviceID = deviceID
            $0.userID = userID
        }
        var options = CallOptions.defaults
        options.timeout = intentTimeout
        do {
            let response = try await service.analyzeIntent(request, options: options)
            return IntentAnalysis(
                intent: response.intent, confidence: response.confidence, entities: response.entities,
                replyText: response.replyText)
        } catch let error as RPCError {
            throw MLError(error)
        } catch {
            throw MLError(.failed, "\(error)")
        }
    }
}
