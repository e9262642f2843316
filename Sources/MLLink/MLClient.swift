import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// A gRPC client for one ML endpoint (`edge.ml.v1.MLService`, CONTRACTS.md §3) over HTTP/2 on
/// TCP, plaintext or TLS.
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
/// Several endpoints, balancing and circuit breakers are in ``MLEndpointPool``.
public final class MLClient: MLBackend {
    public let endpoint: MLEndpoint
    /// Deadline of an `AnalyzeIntent` call (`ml.intentTimeoutMs`).
    public let intentTimeout: Duration
    private let grpc: GRPCClient<HTTP2ClientTransport.Posix>
    private let service: Edge_Ml_V1_MLService.Client<HTTP2ClientTransport.Posix>
    private let health: Grpc_Health_V1_Health.Client<HTTP2ClientTransport.Posix>
    private let logger: Logger

    /// - Parameters:
    ///   - authority: the `:authority` and TLS server name; nil: the endpoint's host. An address
    ///     resolved from `dns:///name` passes the name, so certificates are checked against it.
    ///   - tls: nil for plaintext.
    ///   - intentTimeout: deadline of `AnalyzeIntent` (default 5 s).
    ///   - keepalive: HTTP/2 PING interval while idle (default 30 s); a PING unanswered for
    ///     10 s closes the connection.
    public init(
        endpoint: MLEndpoint, authority: String? = nil, tls: MLConfiguration.TLS? = nil,
        intentTimeout: Duration = .seconds(5), keepalive: Duration = .seconds(30), logger: Logger
    ) throws {
        self.endpoint = endpoint
        self.intentTimeout = intentTimeout
        self.logger = logger
        let target: any ResolvableTarget =
            if endpoint.host.contains(":") {
                .ipv6(address: endpoint.host, port: endpoint.port)
            } else if endpoint.host.split(separator: ".").count == 4, endpoint.host.allSatisfy({ $0.isNumber || $0 == "." }) {
                .ipv4(address: endpoint.host, port: endpoint.port)
            } else {
                .dns(host: endpoint.host, port: endpoint.port)
            }
        let security: HTTP2ClientTransport.Posix.TransportSecurity =
            if let tls {
                .tls { config in
                    if let caFile = tls.caFile {
                        config.trustRoots = .certificates([.file(path: caFile, format: .pem)])
                    }
                    if let certFile = tls.certFile, let keyFile = tls.keyFile {
                        config.certificateChain = [.file(path: certFile, format: .pem)]
                        config.privateKey = .file(path: keyFile, format: .pem)
                    }
                }
            } else {
                .plaintext
            }
        let transport = try HTTP2ClientTransport.Posix(
            target: target,
            transportSecurity: security,
            config: .defaults { config in
                config.connection.keepalive = .init(time: keepalive, timeout: .seconds(10), allowWithoutCalls: true)
                config.http2.authority = tls?.serverName ?? authority
                // Reconnect soon after an endpoint comes back; the breaker, not the backoff, keeps calls away.
                config.backoff = .init(initial: .milliseconds(200), max: .seconds(5), multiplier: 1.6, jitter: 0.2)
            })
        grpc = GRPCClient(transport: transport)
        service = Edge_Ml_V1_MLService.Client(wrapping: grpc)
        health = Grpc_Health_V1_Health.Client(wrapping: grpc)
    }

    /// What `grpc.health.v1.Health/Check` said about the ML service.
    public typealias Health = MLHealth

    /// Both calls of `edge.ml.v1.MLService`.
    public var capabilities: MLCapabilities { .all }

    /// Asks the endpoint's health service about `edge.ml.v1.MLService` (deadline `timeout`).
    public func checkHealth(timeout: Duration = .seconds(2)) async -> MLHealth {
        var options = CallOptions.defaults
        options.timeout = timeout
        do {
            let response = try await health.check(.with { $0.service = "edge.ml.v1.MLService" }, options: options)
            return response.status == .serving ? .serving : .notServing
        } catch let error as RPCError {
            switch error.code {
            case .unimplemented: return .notOffered
            case .notFound: return .notServing
            default: return .unreachable
            }
        } catch {
            return .unreachable
        }
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
