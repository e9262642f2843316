import Foundation
import GatewayCore

/// How the gateway reaches the ML service (`ml.*`).
public struct MLConfiguration: Sendable, Equatable {
    /// One entry of `ml.endpoints`.
    public enum Target: Sendable, Hashable, CustomStringConvertible {
        /// `host:port`: one endpoint (a host name is resolved by the transport).
        case address(MLEndpoint)
        /// `dns:///name:port`: every address the name resolves to is an endpoint of its own,
        /// with its own breaker; the name is resolved again every ``MLConfiguration/resolveInterval``.
        case dns(name: String, port: Int)
        /// `wyoming://host:port`: one Wyoming server (CONTRACTS.md §8, plain TCP; `ml.tls` does not
        /// apply). The endpoint's ``MLEndpoint/kind`` is `.wyoming`.
        case wyoming(MLEndpoint)

        /// Parses `host:port`, `[v6]:port`, `dns:///name:port` or `wyoming://host:port`.
        public init?(_ text: String) {
            let text = text.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("wyoming://") {
                guard let endpoint = MLEndpoint(String(text.dropFirst("wyoming://".count)), kind: .wyoming) else { return nil }
                self = .wyoming(endpoint)
            } else if text.hasPrefix("dns:///") {
                guard let endpoint = MLEndpoint(String(text.dropFirst("dns:///".count))) else { return nil }
                self = .dns(name: endpoint.host, port: endpoint.port)
            } else {
                guard !text.contains("/"), let endpoint = MLEndpoint(text) else { return nil }
                self = .address(endpoint)
            }
        }

        public var description: String {
            switch self {
            case .address(let endpoint): "\(endpoint)"
            case .dns(let name, let port): "dns:///\(MLEndpoint(host: name, port: port))"
            case .wyoming(let endpoint): "\(endpoint)"
            }
        }

        /// The endpoint of a `host:port` or `wyoming://` entry (a `dns:///` entry has none of its own).
        public var endpoint: MLEndpoint? {
            switch self {
            case .address(let endpoint), .wyoming(let endpoint): endpoint
            case .dns: nil
            }
        }

        /// What its endpoints speak.
        public var kind: MLEndpoint.Kind {
            if case .wyoming = self { .wyoming } else { .grpc }
        }
    }

    /// What the endpoints accept (`ml.codec`); Opus from devices is decoded for `pcm_s16le`.
    public enum Codec: String, Sendable, CaseIterable {
        case opus
        case pcm = "pcm_s16le"
    }

    /// Which endpoints serve a step of a dialog (`ml.transcription`, `ml.intent`).
    public enum StepBackends: String, Sendable, CaseIterable {
        /// Every endpoint that offers the step.
        case auto
        /// Only gRPC endpoints.
        case grpc
        /// Only Wyoming endpoints.
        case wyoming

        public func allows(_ kind: MLEndpoint.Kind) -> Bool {
            switch self {
            case .auto: true
            case .grpc: kind == .grpc
            case .wyoming: kind == .wyoming
            }
        }
    }

    /// How a call picks among the healthy endpoints (`ml.balancing`).
    public enum Balancing: String, Sendable, CaseIterable {
        /// The next endpoint in turn.
        case roundRobin
        /// The endpoint with the fewest calls under way (ties in turn).
        case leastOutstanding
    }

    /// TLS to the endpoints (`ml.tls.*`).
    public struct TLS: Sendable, Equatable {
        /// CA certificate (PEM) the server certificate must chain to; nil: the system's roots.
        public var caFile: String?
        /// Client certificate and key (mutual TLS); both or neither.
        public var certFile: String?
        public var keyFile: String?
        /// Name the server certificate must carry; nil: the endpoint's host (or DNS name).
        public var serverName: String?

        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.serverName = serverName
        }
    }

    public var targets: [Target] = []
    public var tls: TLS?
    public var codec: Codec = .opus
    public var intentTimeout: Duration = .seconds(5)
    /// Which endpoints transcribe (`ml.transcription`) and which analyse the intent (`ml.intent`).
    public var transcriptionBackends: StepBackends = .auto
    public var intentBackends: StepBackends = .auto
    /// Wyoming: how long the transcript may take after the audio ended, and each audio chunk to
    /// be taken by the server while the audio streams (`ml.wyoming.transcriptTimeoutMs`).
    public var wyomingTranscriptTimeout: Duration = .seconds(10)
    public var keepalive: Duration = .seconds(30)
    public var balancing: Balancing = .leastOutstanding
    public var breaker = CircuitBreaker.Configuration()
    /// How often `dns:///` names are resolved again (`ml.resolveIntervalSeconds`).
    public var resolveInterval: Duration = .seconds(30)
    /// How often each endpoint is asked `grpc.health.v1.Health/Check` (`ml.healthCheckIntervalSeconds`).
    public var healthCheckInterval: Duration = .seconds(10)
    /// How long a graceful shutdown lets calls under way finish before closing the channels.
    public var shutdownGrace: Duration = .seconds(5)

    public init() {}

    /// Whether every endpoint that may transcribe is a Wyoming server (which takes 16 kHz PCM):
    /// then sessions keep PCM devices' audio as PCM instead of encoding it to Opus.
    public var transcribesOnlyOverWyoming: Bool {
        let allowed = targets.filter { transcriptionBackends.allows($0.kind) }
        return !allowed.isEmpty && allowed.allSatisfy { $0.kind == .wyoming }
    }
}
