import Audio
import Foundation
import Logging
import Metrics
import Reporting
import ServiceLifecycle
import Synchronization
import Wyoming

/// The hub microphone's audio, streamed without end to a Wyoming wake-word server (CONTRACTS.md §8 `detect`):
/// one `detect` + `audio-start` + an `audio-chunk` per captured frame (16 kHz 16-bit mono, resampled from
/// `audio.sampleRate`), and the server's `detection`s handed to the microphone's loop (``takeDetection()``).
///
/// Guarantees:
/// - ``offer(_:)`` never waits: it is called from the microphone's loop for every frame. Between it and the
///   connection sit at most `audio.wake.bufferMs` of audio; a server that falls behind loses the oldest, counted
///   in `gateway.audio.wake.frames.dropped.total`. Frames offered while no connection stands are not kept (the
///   wake word is about now).
/// - A conversation the server ends (`not-detected`) is followed by a new `detect` at once (after the backoff
///   when it lasted under a second, so a server that answers every `detect` at once cannot spin the loop).
///   A server that cannot be reached, hangs up, stops reading, or breaks the protocol (flood, huge lengths, bad
///   JSON: ``WyomingClient``'s limits) costs a reconnect with backoff from 1 s to 30 s, counted by reason in
///   `gateway.audio.wake.connection.failures.total`; logged at error once per streak and reason, a reminder at
///   warning every minute, info when it works again.
/// - Detections are counted by name (`gateway.audio.wake.detections.total`; the configured names, or the first
///   eight names a server used, else `other`), and the count, last name and time are in ``state``.
public final class WakeWordListener: Sendable {
    /// What the status page shows of the wake-word server.
    public struct State: Sendable, Equatable {
        /// `host:port`.
        public var address: String
        /// `audio.wake.mode`.
        public var mode: WakeMode
        /// Whether a `detect` conversation stands now.
        public var connected = false
        /// When ``connected`` last changed (ms since the epoch); nil before the first change.
        public var sinceMs: Int64?
        /// Why the last conversation failed (kept after a reconnect, for the operator).
        public var lastError: String?
        /// Detections since start (those ignored during an open segment too).
        public var detections: Int64 = 0
        public var lastDetectionName: String?
        public var lastDetectionMs: Int64?
    }

    /// Names longer than this are cut (the status page, the log).
    public static let maxNameLength = 64
    /// Distinct detection names that become metric labels when `audio.wake.names` is empty.
    static let maxNameLabels = 8
    /// A wake-word server sends a few small events (`detection`, `not-detected`), no payloads: a conversation
    /// that gets more than 10,000 events, or one event larger than 64 KiB, is a server gone wrong and costs a
    /// reconnect (a flood is cut off after at most 10,000 events; one event at a time is held).
    static let limits = WyomingLimits(maxDataBytes: 64 * 1024, maxPayloadBytes: 64 * 1024, maxEventsPerCall: 10_000)

    private let configuration: WakeWordConfiguration
    private let client: WyomingClient
    private let sampleRate: Int
    private let bufferedFrames: Int
    private let logger: Logger
    private let publisher: StatePublisher<State>
    private let connection = Mutex<AsyncStream<[UInt8]>.Continuation?>(nil)
    private let resampler: Mutex<PCMResampler>
    private let pending = Mutex<String?>(nil)
    private let labels = Mutex<[String: Counter]>([:])
    private let streak = Mutex(FailureStreak(messages: FailureStreak.Messages(
        first: "the wake-word server cannot be used; retrying with backoff (no wake word is heard meanwhile)",
        newReason: "the wake-word server cannot be used, now for another reason; retrying",
        reminder: { seconds, attempts in "the wake-word server still cannot be used after \(seconds) s and \(attempts) attempts" },
        recovered: { seconds, attempts in "the wake-word server works again after \(seconds) s and \(attempts) failed attempts" })))
    private let droppedCount = Atomic<Int>(0)
    private let metrics = Metrics()

    struct Metrics: Sendable {
        let dropped = Counter(label: "gateway.audio.wake.frames.dropped.total")
        let failures: [WyomingError.Code: Counter] = Dictionary(
            uniqueKeysWithValues: WyomingError.Code.allCases.map {
                ($0, Counter(label: "gateway.audio.wake.connection.failures.total", dimensions: [("reason", $0.rawValue)]))
            })
    }

    /// Frames dropped because the server fell behind, since start (`gateway.audio.wake.frames.dropped.total`).
    public var droppedFrames: Int { droppedCount.load(ordering: .relaxed) }

    /// The values the status page reads.
    public var state: PublishedState<State> { publisher.reader }

    /// - Parameters:
    ///   - sampleRate: the microphone's rate (`audio.sampleRate`); frames are resampled to 16 kHz.
    ///   - framesPerSecond: captured frames per second, to turn `bufferMs` into frames.
    public init(
        configuration: WakeWordConfiguration, sampleRate: Int, framesPerSecond: Int, timeouts: WyomingTimeouts = WyomingTimeouts(),
        logger: Logger
    ) {
        precondition(configuration.host != nil, "a wake-word listener needs audio.wake.endpoint")
        self.configuration = configuration
        self.sampleRate = sampleRate
        self.bufferedFrames = max(1, configuration.bufferMs * framesPerSecond / 1000)
        var logger = logger
        logger[metadataKey: "audio.wake.endpoint"] = "\(configuration.address ?? "")"
        self.logger = logger
        client = WyomingClient(host: configuration.host ?? "", port: configuration.port, limits: Self.limits, timeouts: timeouts, logger: logger)
        resampler = Mutex(PCMResampler(from: sampleRate, to: 16_000))
        publisher = StatePublisher(State(address: configuration.address ?? "", mode: configuration.mode))
        for name in configuration.names { _ = counter(for: name) }
    }

    // MARK: - The microphone's side

    /// Hands one captured frame to the connection, if one stands; never waits.
    public func offer(_ frame: [Int16]) {
        connection.withLock { continuation in
            guard let continuation else { return }
            let samples = resampler.withLock { $0.push(frame) }
            var bytes = [UInt8](repeating: 0, count: samples.count * 2)
            for (index, sample) in samples.enumerated() {
                let value = UInt16(bitPattern: sample)
                bytes[2 * index] = UInt8(truncatingIfNeeded: value)
                bytes[2 * index + 1] = UInt8(truncatingIfNeeded: value >> 8)
            }
            if case .dropped = continuation.yield(bytes) {
                droppedCount.add(1, ordering: .relaxed)
                metrics.dropped.increment()
            }
        }
    }

    /// The name of a detection that arrived since the last call (the latest, when several did), or nil.
    public func takeDetection() -> String? {
        pending.withLock { name in
            defer { name = nil }
            return name
        }
    }

    // MARK: - The connection

    /// Streams to the server until the task is cancelled (or shuts down gracefully).
    public func run() async {
        var delay = Duration.seconds(1)
        let names = configuration.names.isEmpty ? nil : configuration.names
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(bufferedFrames))
            let started = ContinuousClock.now
            let audio = StartingAudio(base: stream) { [self] in
                // The writer takes its first chunk: connected, `detect` and `audio-start` sent.
                resampler.withLock { $0 = PCMResampler(from: sampleRate, to: 16_000) }
                connection.withLock { $0 = continuation }
                publisher.update { state in
                    state.connected = true
                    state.sinceMs = Self.nowMs()
                }
                if let summary = streak.withLock({ $0.recovered() }) { logger.info("\(summary)") }
            }
            var failure: WyomingError?
            do {
                try await cancelWhenGracefulShutdown {
                    try await self.client.detect(names: names, format: .pcm16kMono, audio: audio) { event in
                        if case .detection(let name, let timestamp) = event { self.detected(name: name, timestamp: timestamp) }
                    }
                }
            } catch let error as WyomingError {
                failure = error
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { failure = nil } else { failure = WyomingError(.io, "\(error)") }
            }
            connection.withLock { $0 = nil }
            continuation.finish()
            let wasConnected = publisher.update { state in
                defer {
                    if state.connected { state.sinceMs = Self.nowMs() }
                    state.connected = false
                    if let failure { state.lastError = failure.message }
                }
                return state.connected
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            let lasted = started.duration(to: .now)
            if let failure {
                metrics.failures[failure.code]?.increment()
                if let (level, message) = streak.withLock({ $0.failed(reason: failure.code.rawValue) }) {
                    logger.log(
                        level: level, "\(message)",
                        metadata: [
                            "reason": "\(failure.code.rawValue)", "error": "\(failure.message)", "retry.in": "\(delay)",
                            "audio.wake.was_connected": "\(wasConnected)",
                        ])
                } else {
                    logger.debug("the wake-word server failed again", metadata: ["reason": "\(failure.code.rawValue)", "error": "\(failure.message)"])
                }
            } else {
                logger.debug("the wake-word server ended the conversation; a new detect follows")
                if lasted >= .seconds(1) {
                    delay = .seconds(1)
                    continue
                }
            }
            // A conversation that streamed for a while and then failed starts the backoff over.
            if lasted >= .seconds(60) { delay = .seconds(1) }
            let wait = delay
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            delay = min(delay * 2, .seconds(30))
        }
    }

    private func detected(name: String?, timestamp: Int?) {
        let name = String((name ?? "").prefix(Self.maxNameLength))
        let shown = name.isEmpty ? (configuration.names.first ?? "wake word") : name
        counter(for: shown).increment()
        // Before the state says so: whoever sees the count can take it.
        pending.withLock { $0 = shown }
        publisher.update { state in
            state.detections += 1
            state.lastDetectionName = shown
            state.lastDetectionMs = Self.nowMs()
        }
        logger.info("wake word detected", metadata: ["audio.wake.name": "\(shown)", "audio.wake.timestamp_ms": "\(timestamp.map(String.init) ?? "-")"])
    }

    /// The detections counter of `name`: its own label for the configured names (or, without any, the first
    /// ``maxNameLabels`` names a server used), `other` for the rest, so a server cannot grow the label set.
    private func counter(for name: String) -> Counter {
        labels.withLock { labels in
            if let counter = labels[name] { return counter }
            let own = configuration.names.isEmpty ? labels.count < Self.maxNameLabels : configuration.names.contains(name)
            let label = own ? name : "other"
            let counter = labels[label] ?? Counter(label: "gateway.audio.wake.detections.total", dimensions: [("name", label)])
            if own || labels[label] == nil { labels[label] = counter }
            return counter
        }
    }

    private static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// The audio of one `detect` conversation: calls `onStart` when the client takes its first chunk (the
/// connection stands and the request went out), then passes the stream's chunks on.
struct StartingAudio: AsyncSequence, Sendable {
    typealias Element = [UInt8]
    let base: AsyncStream<[UInt8]>
    let onStart: @Sendable () -> Void

    struct Iterator: AsyncIteratorProtocol {
        var base: AsyncStream<[UInt8]>.Iterator
        var onStart: (@Sendable () -> Void)?

        mutating func next() async -> [UInt8]? {
            if let start = onStart {
                onStart = nil
                start()
            }
            return await base.next()
        }
    }

    func makeAsyncIterator() -> Iterator { Iterator(base: base.makeAsyncIterator(), onStart: onStart) }
}
