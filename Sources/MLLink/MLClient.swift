import GRPCCore
import GRPCNIOTransportHTTP2
import Logging

/// A gRPC client for one ML endpoint (`edge.ml.v1.MLService`, CONTRACTS.md §3) over HTTP/2 on
/// TCP, plaintext.
///
/// ``run()`` keeps the connection (reconnecting with backoff, HTTP/2 keepalive) until the task is
/// cancelled or ``shutDown()`` is called; calls made before it runs wait for it.
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
