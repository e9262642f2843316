import Audio
import Foundation
import Logging
import Synchronization
import Wyoming

/// What a Wyoming endpoint told the gateway about itself (its last `info`), for
/// `/api/ml/endpoints` and the status page.
public struct MLEndpointDetails: Sendable, Equatable {
    /// The Wyoming services it offers (`asr`, `intent`, `handle`, `tts`, `wake`), sorted.
    public var services: [String]
    /// Its installed programs (e.g. `faster-whisper`), sorted.
    public var programs: [String]
    /// The installed models (TTS: voices) of all its services.
    public var models: [String]
    /// The languages of its ASR, intent and handle models, sorted.
    public var languages: [String]
    /// Whether its ASR streams partial transcripts (`transcript-chunk`).
    public var streamsTranscripts: Bool

    public init(services: [String], programs: [String], models: [String], languages: [String], streamsTranscripts: Bool) {
        self.services = services
        self.programs = programs
        self.models = models
        self.languages = languages
        self.streamsTranscripts = streamsTranscripts
    }

    init(_ info: WyomingInfo) {
        let services = WyomingInfo.Service.allCases.filter { info.offers($0) }
        self.init(
            services: services.map(\.rawValue),
            programs: Array(Set(services.flatMap { info.programs[$0, default: []].filter(\.installed).map(\.name) })).sorted(),
            models: services.flatMap { info.models(of: $0) },
            languages: Array(Set([WyomingInfo.Service.asr, .intent, .handle].flatMap { info.languages(of: $0) })).sorted(),
            streamsTranscripts: info.streamsTranscripts)
    }
}

/// One Wyoming server (CONTRACTS.md §8) as an ML endpoint of ``MLEndpointPool``.
///
/// - **Capabilities**: from its `info`, asked with `describe` when it starts and at every health
///   check: ASR → transcription, intent or handle → intent. Until the first `describe` answers it
///   offers nothing; a failed one keeps what the last one said (and reports `unreachable`).
/// - **Transcription**: `transcribe` (the session's language) + `audio-start` + the audio as it
///   arrives as `audio-chunk`s of 16 kHz 16-bit mono PCM + `audio-stop`: Opus packets are decoded
///   at 16 kHz mono, PCM at another rate or channel count is resampled (``PCMResampler``).
///   `transcript-chunk`s become partial results, the `transcript` the final one (confidence 1:
///   Wyoming carries none).
/// - **Intent**: a server offering intent gets `recognize` (`intent` → its name, entities as
///   strings, its text as the reply, confidence 1; `not-recognized` → intent `unknown`, its text,
///   confidence 0); a server offering only handle gets the text as a `transcript` (`handled` →
///   intent `handled` with its text, confidence 1; `not-handled` → `unknown`, confidence 0).
/// - **Errors**: every ``WyomingError`` is retriable for the pool (``MLError`` `unavailable` or
///   `deadlineExceeded`), so a dead, silent or broken server counts against its breaker and the
///   call moves to another endpoint like a failing gRPC one.
///
/// Each call opens its own connection (the protocol has one conversation per connection), so
/// ``run()`` holds nothing but the first `describe`.
public final class WyomingBackend: MLBackend {
    public let endpoint: MLEndpoint
    private let client: WyomingClient
    private let describeClient: WyomingClient
    private let intentClient: WyomingClient
    private let logger: Logger

    struct State {
        var info: WyomingInfo?
        var stopping = false
        var calls = 0
        var stopped: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    private let (stop, stopContinuation) = AsyncStream<Void>.makeStream()

    /// - Parameters:
    ///   - intentTimeout: deadline of `recognize` / `handle` (`ml.intentTimeoutMs`).
    ///   - transcriptTimeout: how long the transcript may take after the audio ended
    ///     (`ml.wyoming.transcriptTimeoutMs`).
    public init(
        endpoint: MLEndpoint, intentTimeout: Duration = .seconds(5), transcriptTimeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(2), limits: WyomingLimits = WyomingLimits(), logger: Logger
    ) {
        self.endpoint = endpoint
        var logger = logger
        logger[metadataKey: "ml.endpoint"] = "\(endpoint)"
        self.logger = logger
        client = WyomingClient(
            host: endpoint.host, port: endpoint.port, limits: limits,
            timeouts: WyomingTimeouts(connect: connectTimeout, call: transcriptTimeout), logger: logger)
        intentClient = WyomingClient(
            host: endpoint.host, port: endpoint.port, limits: limits,
            timeouts: WyomingTimeouts(connect: connectTimeout, call: intentTimeout), logger: logger)
        describeClient = WyomingClient(
            host: endpoint.host, port: endpoint.port, limits: limits,
            timeouts: WyomingTimeouts(connect: connectTimeout, call: .seconds(2)), logger: logger)
    }

    /// What the last `describe` said, nil before the first answer.
    public var info: WyomingInfo? { state.withLock { $0.info } }

    public var capabilities: MLCapabilities {
        guard let info else { return [] }
        var offers: MLCapabilities = []
        if info.offers(.asr) { offers.insert(.transcription) }
        if info.offers(.intent) || info.offers(.handle) { offers.insert(.intent) }
        return offers
    }

    public var details: MLEndpointDetails? { info.map { MLEndpointDetails($0) } }

    /// Asks `describe` once, then waits for ``shutDown()`` (and the calls under way) or cancellation.
    public func run() async throws {
        _ = await checkHealth(timeout: .seconds(2))
        for await _ in stop {}
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state -> Bool in
                    if state.calls == 0 || Task.isCancelled { return true }
                    state.stopped = continuation
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.stopped.take() }?.resume()
        }
    }

    public func shutDown() {
        state.withLock { $0.stopping = true }
        stopContinuation.finish()
    }

    /// `describe` → `info`: serving (with what it offers now) or unreachable (keeping what it offered).
    public func checkHealth(timeout: Duration) async -> MLHealth {
        let client =
            timeout == describeClient.timeouts.call
            ? describeClient
            : WyomingClient(
                host: endpoint.host, port: endpoint.port, limits: describeClient.limits,
                timeouts: WyomingTimeouts(connect: describeClient.timeouts.connect, call: timeout), logger: logger)
        do {
            let info = try await client.describe()
            let changed = state.withLock { state -> Bool in
                defer { state.info = info }
                return state.info != info
            }
            if changed {
                let details = MLEndpointDetails(info)
                logger.info(
                    "Wyoming endpoint described itself",
                    metadata: [
                        "wyoming.services": "\(details.services.joined(separator: ","))",
                        "wyoming.programs": "\(details.programs.joined(separator: ","))",
                        "wyoming.languages": "\(details.languages.joined(separator: ","))",
                    ])
            }
            return .serving
        } catch {
            logger.debug("Wyoming describe failed", metadata: ["error": "\(error)"])
            return .unreachable
        }
    }

    public func transcribe<Audio: AsyncSequence & Sendable>(
        configuration: AudioStreamConfiguration, audio: Audio, onResult: @escaping @Sendable (Transcription) async -> Void
    ) async throws(MLError) where Audio.Element == [UInt8] {
        try begin()
        defer { end() }
        let pcm = PCM16kMonoAudio(base: audio, codec: configuration.codec, sampleRate: Int(configuration.sampleRate), channels: Int(configuration.channels))
        let (partials, partialSink) = AsyncStream<String>.makeStream()
        let delivery = Task {
            for await text in partials { await onResult(Transcription(text: text, isFinal: false, confidence: 0)) }
        }
        let client = client
        let language = configuration.language.isEmpty ? nil : configuration.language
        let outcome: Result<WyomingTranscript, MLError>
        do {
            let transcript = try await client.transcribe(language: language, format: .pcm16kMono, audio: pcm) { text in
                partialSink.yield(text)
            }
            outcome = .success(transcript)
        } catch {
            outcome = .failure(Self.mlError(error, call: "transcribe"))
        }
        partialSink.finish()
        await delivery.value
        let transcript = try outcome.get()
        await onResult(Transcription(text: transcript.text, isFinal: true, confidence: 1))
    }

    public func analyzeIntent(text: String, context: [String: String], deviceID: String, userID: String) async throws(MLError) -> IntentAnalysis {
        try begin()
        defer { end() }
        let info = info
        do {
            if info?.offers(.intent) ?? true {
                switch try await intentClient.recognize(text: text) {
                case .intent(let name, let entities, let reply):
                    var values: [String: String] = [:]
                    for entity in entities { values[entity.name] = Self.string(entity.value) }
                    return IntentAnalysis(intent: name, confidence: 1, entities: values, replyText: reply ?? "")
                case .notRecognized(let reply):
                    return IntentAnalysis(intent: "unknown", confidence: 0, entities: [:], replyText: reply ?? "")
                }
            } else {
                switch try await intentClient.handle(text: text) {
                case .handled(let reply):
                    return IntentAnalysis(intent: "handled", confidence: 1, entities: [:], replyText: reply ?? "")
                case .notHandled(let reply):
                    return IntentAnalysis(intent: "unknown", confidence: 0, entities: [:], replyText: reply ?? "")
                }
            }
        } catch {
            throw Self.mlError(error, call: "intent")
        }
    }

    // MARK: -

    private func begin() throws(MLError) {
        let stopping = state.withLock { state -> Bool in
            if state.stopping { return true }
            state.calls += 1
            return false
        }
        if stopping { throw MLError(.unavailable, "the Wyoming endpoint \(endpoint) is shutting down") }
    }

    private func end() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.calls -= 1
            return state.calls == 0 ? state.stopped.take() : nil
        }
        waiter?.resume()
    }

    /// An entity's value as text: a string as it is, anything else as its JSON.
    static func string(_ value: WyomingJSON) -> String {
        if let string = value.string { return string }
        if case .null = value { return "" }
        guard let data = try? JSONEncoder().encode(value) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }

    /// How a failed Wyoming call counts for the pool: the audio's own error as it is; everything
    /// else retriable (`deadlineExceeded` for a silent server, `unavailable` for the rest: an
    /// unreachable server, a dropped connection, and a server breaking the protocol or a limit,
    /// whose breaker should keep calls away like a dead one's).
    static func mlError(_ error: any Error, call: String) -> MLError {
        switch error {
        case let error as MLError:
            return error
        case let error as WyomingError:
            return MLError(error.code == .deadlineExceeded ? .deadlineExceeded : .unavailable, "Wyoming \(call): \(error)")
        case is CancellationError:
            return MLError(.unavailable, "Wyoming \(call): cancelled")
        default:
            return MLError(.failed, "Wyoming \(call): \(error)")
        }
    }
}

/// A session's audio as Wyoming takes it: 16 kHz 16-bit mono PCM. Opus packets are decoded at
/// 16 kHz mono (libopus decodes any packet at any of its rates and channel counts); PCM at another
/// rate or channel count is resampled.
struct PCM16kMonoAudio<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == [UInt8] {
    typealias Element = [UInt8]
    let base: Base
    let codec: String
    let sampleRate: Int
    let channels: Int

    func makeAsyncIterator() -> Iterator {
        Iterator(base: base.makeAsyncIterator(), codec: codec, sampleRate: sampleRate, channels: channels)
    }

    struct Iterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let codec: String
        var decoder: OpusDecoder?
        var resampler: PCMResampler?

        init(base: Base.AsyncIterator, codec: String, sampleRate: Int, channels: Int) {
            self.base = base
            self.codec = codec
            if codec != MLConfiguration.Codec.opus.rawValue, sampleRate > 0, channels > 0 {
                let resampler = PCMResampler(from: sampleRate, to: 16_000, channels: channels)
                self.resampler = resampler.isIdentity ? nil : resampler
            }
        }

        mutating func next() async throws -> [UInt8]? {
            guard let chunk = try await base.next() else { return nil }
            if codec == MLConfiguration.Codec.opus.rawValue {
                if decoder == nil {
                    do {
                        decoder = try OpusDecoder(sampleRate: 16_000, channels: 1)
                    } catch {
                        throw MLError(.failed, "cannot set up an Opus decoder at 16 kHz: \(error)")
                    }
                }
                // A packet that does not decode is skipped, as the session skips frames it cannot convert.
                return (try? decoder!.decode(chunk)) ?? []
            }
            guard resampler != nil else { return chunk }
            return resampler!.push(littleEndian: chunk)
        }
    }
}
