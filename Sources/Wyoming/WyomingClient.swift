import Logging
import Metrics
import NIOCore
import NIOPosix

/// A client of one Wyoming server (`host:port`): each call opens a connection, speaks one conversation of
/// CONTRACTS.md §8 and closes it.
///
/// Whatever the server does, a call ends with its answer or a ``WyomingError`` within the timeouts (for the
/// streaming calls: within `timeouts.call` after the caller's audio ended), and holds no more than
/// ``WyomingLimits`` allow. Cancelling the calling task closes the connection at once. Each failed call is
/// counted (`gateway.wyoming.calls.failed.total`, by call and reason) and logged with its reason: a warning
/// when the server broke the protocol or a limit, debug when it could not be reached or was silent (the
/// caller's breaker decides what that means).
///
/// ```swift
/// let client = WyomingClient(host: "127.0.0.1", port: 10300)
/// let info = try await client.describe()
/// if info.offers(.asr) {
///     let transcript = try await client.transcribe(language: "en", format: .pcm16kMono, audio: frames)
/// }
/// ```
public struct WyomingClient: Sendable {
    public let host: String
    public let port: Int
    public let limits: WyomingLimits
    public let timeouts: WyomingTimeouts
    private let group: any EventLoopGroup
    private let logger: Logger
    private let metrics: WyomingMetrics

    public init(
        host: String, port: Int, limits: WyomingLimits = WyomingLimits(), timeouts: WyomingTimeouts = WyomingTimeouts(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "edge-gateway.wyoming", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.metrics = WyomingMetrics(factory: metricsFactory)
        self.host = host
        self.port = port
        self.limits = limits
        self.timeouts = timeouts
        self.group = eventLoopGroup
        var logger = logger
        logger[metadataKey: "wyoming.server"] = "\(host):\(port)"
        self.logger = logger
    }

    /// `describe` → `info`: the services, models and languages the server offers.
    public func describe() async throws -> WyomingInfo {
        try await call("describe", request: [WyomingEvent(type: "describe")]) { reader in
            while true {
                let event = try await reader.expectEvent("info")
                if event.type == "info" { return WyomingInfo(data: event.data) }
            }
        }
    }

    /// `transcribe` + `audio-start` + one `audio-chunk` per element of `audio`, sent as it arrives, +
    /// `audio-stop` → the `transcript`. Where the server streams, each `transcript-chunk`'s text goes to
    /// `onPartial` as it comes. An error thrown by `audio` ends the call and is rethrown as it is.
    public func transcribe<Audio: AsyncSequence & Sendable>(
        language: String?, format: WyomingAudioFormat = .pcm16kMono, audio: Audio,
        onPartial: @escaping @Sendable (String) -> Void = { _ in }
    ) async throws -> WyomingTranscript where Audio.Element == [UInt8] {
        var request: [String: WyomingJSON] = [:]
        if let language { request["language"] = .string(language) }
        let transcribe = WyomingEvent(type: "transcribe", data: request)
        let transcript = try await callStreaming("transcribe", first: transcribe, format: format, audio: audio) { reader in
            while true {
                let event = try await reader.expectEvent("the transcript")
                switch event.type {
                case "transcript":
                    guard let text = event.data["text"]?.string else {
                        throw WyomingError(.unexpectedEvent, "transcript without a string \"text\"")
                    }
                    return WyomingTranscript(text: text, language: event.data["language"]?.string)
                case "transcript-chunk":
                    if let text = event.data["text"]?.string { onPartial(text) }
                default:
                    continue  // transcript-start/-stop and events of newer protocol versions
                }
            }
        }
        guard let transcript else { throw WyomingError(.deadlineExceeded, "transcribe: no answer within \(timeouts.call)") }  // not reached: its deadline is an error
        return transcript
    }

    /// `recognize` → `intent` (name, entities, reply text) | `not-recognized` (reply text).
    public func recognize(text: String) async throws -> WyomingRecognition {
        try await call("recognize", request: [WyomingEvent(type: "recognize", data: ["text": .string(text)])]) { reader in
            while true {
                let event = try await reader.expectEvent("the intent")
                switch event.type {
                case "intent":
                    guard let name = event.data["name"]?.string else {
                        throw WyomingError(.unexpectedEvent, "intent without a string \"name\"")
                    }
                    let entities: [WyomingEntity] = (event.data["entities"]?.array ?? []).compactMap { entity in
                        guard let name = entity["name"]?.string else { return nil }
                        return WyomingEntity(name: name, value: entity["value"] ?? .null)
                    }
                    return .intent(name: name, entities: entities, text: event.data["text"]?.string)
                case "not-recognized":
                    return .notRecognized(text: event.data["text"]?.string)
                default:
                    continue
                }
            }
        }
    }

    /// The text as a `transcript` to a handle server → `handled` | `not-handled`, each with the reply text.
    public func handle(text: String) async throws -> WyomingHandling {
        try await call("handle", request: [WyomingEvent(type: "transcript", data: ["text": .string(text)])]) { reader in
            while true {
                let event = try await reader.expectEvent("handled or not-handled")
                switch event.type {
                case "handled": return .handled(text: event.data["text"]?.string)
                case "not-handled": return .notHandled(text: event.data["text"]?.string)
                default: continue  // handled-start/-chunk/-stop: the final event repeats the text
                }
            }
        }
    }

    /// `synthesize` (with `voice.name` when given) → the PCM of `audio-start` … `audio-stop`, at most
    /// `limits.maxAudioBytes`.
    public func synthesize(text: String, voice: String? = nil) async throws -> WyomingSpeech {
        var data: [String: WyomingJSON] = ["text": .string(text)]
        if let voice { data["voice"] = ["name": .string(voice)] }
        let maxAudioBytes = limits.maxAudioBytes
        return try await call("synthesize", request: [WyomingEvent(type: "synthesize", data: data)]) { reader in
            var format: WyomingAudioFormat?
            var pcm: [UInt8] = []
            while true {
                let event = try await reader.expectEvent("the end of the audio")
                switch event.type {
                case "audio-start", "audio-chunk":
                    if format == nil { format = try Self.format(of: event) }
                    if pcm.count + event.payload.count > maxAudioBytes {
                        throw WyomingError(.limitExceeded, "the spoken reply is longer than \(maxAudioBytes) bytes (limit maxAudioBytes)")
                    }
                    pcm += event.payload
                case "audio-stop":
                    guard let format else { throw WyomingError(.unexpectedEvent, "audio-stop without audio-start") }
                    return WyomingSpeech(format: format, pcm: pcm)
                default:
                    continue
                }
            }
        }
    }

    /// `detect` (with `names` when given) + `audio-start` + the audio's chunks as they arrive + `audio-stop`;
    /// each `detection` and the final `not-detected` go to `onEvent` while the audio streams. Returns when the
    /// server answered `not-detected` or closed after the audio and an answer, or when it sent nothing more for
    /// `timeouts.call` after the audio ended (servers need not answer when they heard nothing). A server that
    /// closes while the audio streams, or is inside an event at the deadline, fails the call.
    public func detect<Audio: AsyncSequence & Sendable>(
        names: [String]? = nil, format: WyomingAudioFormat = .pcm16kMono, audio: Audio,
        onEvent: @escaping @Sendable (WyomingWakeEvent) -> Void
    ) async throws where Audio.Element == [UInt8] {
        var data: [String: WyomingJSON] = [:]
        if let names { data["names"] = .array(names.map { .string($0) }) }
        let detect = WyomingEvent(type: "detect", data: data)
        let _: Bool? = try await callStreaming("detect", first: detect, format: format, audio: audio, deadlineIsError: false) { reader in
            var answered = false
            while let event = try await reader.next() {
                answered = true
                switch event.type {
                case "detection":
                    onEvent(.detection(name: event.data["name"]?.string, timestamp: event.data["timestamp"]?.int))
                case "not-detected":
                    onEvent(.notDetected)
                    return true
                default:
                    continue
                }
            }
            // A server that heard nothing says `not-detected`; closing without a word is a failure.
            if !answered || !reader.isRequestSent {
                throw WyomingError(.connectionClosed, "the wake-word server closed the connection without an answer")
            }
            return true
        }
    }

    /// ``detect(names:format:audio:onEvent:)`` as a stream: it ends after the audio (or with the call's error);
    /// stopping to iterate cancels the call.
    public func detections<Audio: AsyncSequence & Sendable>(
        names: [String]? = nil, format: WyomingAudioFormat = .pcm16kMono, audio: Audio
    ) -> AsyncThrowingStream<WyomingWakeEvent, any Error> where Audio.Element == [UInt8] {
        let (stream, continuation) = AsyncThrowingStream<WyomingWakeEvent, any Error>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let task = Task {
            do {
                try await detect(names: names, format: format, audio: audio) { continuation.yield($0) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    // MARK: - Calls

    /// Counts and logs a failed call, then rethrows its error.
    private func recordingFailure<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as WyomingError {
            metrics.failed(what, error.code)
            let metadata: Logger.Metadata = ["wyoming.call": "\(what)", "wyoming.error": "\(error.code.rawValue)", "reason": "\(error.message)"]
            if error.isRetriable {
                logger.debug("wyoming call failed", metadata: metadata)
            } else {
                logger.warning("wyoming call failed: the server broke the protocol or a limit", metadata: metadata)
            }
            throw error
        }
    }

    private func call<T: Sendable>(
        _ what: String, request: [WyomingEvent], read: @escaping @Sendable (inout WyomingReader) async throws -> T
    ) async throws -> T {
        try await recordingFailure(what) { try await unrecordedCall(what, request: request, read: read) }
    }

    private func unrecordedCall<T: Sendable>(
        _ what: String, request: [WyomingEvent], read: @escaping @Sendable (inout WyomingReader) async throws -> T
    ) async throws -> T {
        let answer = try await WyomingConnection.call(
            host: host, port: port, limits: limits, timeouts: timeouts, group: group, what: what,
            write: { writer in
                for event in request { try await writer.send(event) }
            },
            read: read
        )
        guard let answer else { throw WyomingError(.deadlineExceeded, "\(what): no answer within \(timeouts.call)") }
        return answer
    }

    private func callStreaming<T: Sendable, Audio: AsyncSequence & Sendable>(
        _ what: String, first: WyomingEvent, format: WyomingAudioFormat, audio: Audio, deadlineIsError: Bool = true,
        read: @escaping @Sendable (inout WyomingReader) async throws -> T
    ) async throws -> T? where Audio.Element == [UInt8] {
        try await recordingFailure(what) {
            try await unrecordedStreaming(what, first: first, format: format, audio: audio, deadlineIsError: deadlineIsError, read: read)
        }
    }

    private func unrecordedStreaming<T: Sendable, Audio: AsyncSequence & Sendable>(
        _ what: String, first: WyomingEvent, format: WyomingAudioFormat, audio: Audio, deadlineIsError: Bool,
        read: @escaping @Sendable (inout WyomingReader) async throws -> T
    ) async throws -> T? where Audio.Element == [UInt8] {
        try await WyomingConnection.call(
            host: host, port: port, limits: limits, timeouts: timeouts, group: group, what: what,
            deadlineIsError: deadlineIsError,
            write: { writer in
                try await writer.send(first)
                var start = format.data
                start["timestamp"] = 0
                try await writer.send(WyomingEvent(type: "audio-start", data: start))
                let bytesPerMillisecond = max(1, format.rate * format.width * format.channels / 1000)
                var sent = 0
                var chunks = audio.makeAsyncIterator()
                while true {
                    let chunk: [UInt8]?
                    do {
                        chunk = try await chunks.next()
                    } catch {
                        throw WyomingConnection.AudioSourceFailure(error: error)
                    }
                    guard let chunk else { break }
                    if chunk.isEmpty { continue }
                    var data = format.data
                    data["timestamp"] = .int(sent / bytesPerMillisecond)
                    try await writer.send(WyomingEvent(type: "audio-chunk", data: data, payload: chunk))
                    sent += chunk.count
                }
                try await writer.send(WyomingEvent(type: "audio-stop", data: ["timestamp": .int(sent / bytesPerMillisecond)]))
            },
            read: read
        )
    }

    private static func format(of event: WyomingEvent) throws -> WyomingAudioFormat {
        guard let rate = event.data["rate"]?.int, let width = event.data["width"]?.int, let channels = event.data["channels"]?.int,
            (1...384_000).contains(rate), (1...4).contains(width), (1...16).contains(channels)
        else {
            throw WyomingError(.unexpectedEvent, "\(event.type) without a plausible rate, width and channels")
        }
        return WyomingAudioFormat(rate: rate, width: width, channels: channels)
    }
}
