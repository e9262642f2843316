/// What an ML endpoint offers a dialog: transcription of a stream of audio, the meaning of a text.
public struct MLCapabilities: OptionSet, Sendable, Hashable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// `TranscribeStream` (gRPC) or ASR (Wyoming).
    public static let transcription = MLCapabilities(rawValue: 1 << 0)
    /// `AnalyzeIntent` (gRPC) or intent recognition / handling (Wyoming).
    public static let intent = MLCapabilities(rawValue: 1 << 1)

    public static let all: MLCapabilities = [.transcription, .intent]
}

/// What a health check found out about an endpoint.
public enum MLHealth: String, Sendable, Equatable {
    case serving
    case notServing = "not serving"
    /// The server does not offer a health service (call outcomes decide instead).
    case notOffered = "not offered"
    /// The check itself failed (unreachable, timed out).
    case unreachable
}

/// One ML endpoint as ``MLEndpointPool`` uses it, whatever it speaks: ``MLClient`` (gRPC,
/// CONTRACTS.md §3) offers both calls; a Wyoming server (§8) offers what its `info` says. The pool
/// sends a call only to endpoints whose ``capabilities`` contain it, through the same balancing,
/// breakers, retries and metrics.
public protocol MLBackend: AnyObject, Sendable {
    var endpoint: MLEndpoint { get }
    /// What it offers now (a Wyoming server's may change with its next `describe`).
    var capabilities: MLCapabilities { get }
    /// What the endpoint said about itself beyond ``capabilities`` (a Wyoming server's `info`);
    /// nil for gRPC.
    var details: MLEndpointDetails? { get }
    /// Keeps its connections until ``shutDown()`` or cancellation.
    func run() async throws
    /// Lets calls under way finish, refuses new ones, then ends ``run()``.
    func shutDown()
    /// Asks the endpoint about itself (deadline `timeout`).
    func checkHealth(timeout: Duration) async -> MLHealth
    /// Streams audio and hands each result to `onResult`, in order; returns after the final one.
    func transcribe<Audio: AsyncSequence & Sendable>(
        configuration: AudioStreamConfiguration, audio: Audio, onResult: @escaping @Sendable (Transcription) async -> Void
    ) async throws(MLError) where Audio.Element == [UInt8]
    /// What `text` means.
    func analyzeIntent(text: String, context: [String: String], deviceID: String, userID: String) async throws(MLError) -> IntentAnalysis
}

extension MLBackend {
    public var details: MLEndpointDetails? { nil }
}
