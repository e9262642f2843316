import BrokerTestSupport
import Foundation
import Logging
import MetricsTestKit
import Testing

@testable import Wyoming

/// Servers that misbehave (Tests/Wyoming/servers.py --hostile): each costs one failed call with a typed error,
/// within the call's deadline, and no more memory than the limits allow.
@Suite("Wyoming client against hostile servers")
struct WyomingHostileServerTests {
    /// A short deadline so silent and dripping servers end the call soon; long enough for a loaded machine to
    /// let the fast failures (garbage) arrive first.
    static let timeouts = WyomingTimeouts(connect: .seconds(5), call: .seconds(3))
    static let limits = WyomingLimits(maxAudioBytes: 256 * 1024, maxEventsPerCall: 2000)

    enum Call: String, CaseIterable, Sendable {
        case describe, transcribe, recognize, handle, synthesize, detect
    }

    static let modes: [(String, WyomingError.Code)] = [
        ("silent", .deadlineExceeded),
        ("drop", .connectionClosed),
        ("huge-length", .invalidLength),
        ("bad-json", .invalidHeader),
        ("overlong-payload", .headerTooLong),
        ("drip", .deadlineExceeded),
    ]

    static func run(_ call: Call, port: Int, limits: WyomingLimits = limits) async throws {
        let client = WyomingClient(host: "127.0.0.1", port: port, limits: limits, timeouts: timeouts)
        switch call {
        case .describe: _ = try await client.describe()
        case .transcribe: _ = try await client.transcribe(language: "en", audio: tone(chunks: 5))
        case .recognize: _ = try await client.recognize(text: "turn on the kitchen light")
        case .handle: _ = try await client.handle(text: "turn on the kitchen light")
        case .synthesize: _ = try await client.synthesize(text: "hello")
        case .detect: try await client.detect(audio: tone(chunks: 5)) { _ in }
        }
    }

    @Test("each hostile mode fails each call with its typed error", arguments: modes.indices, Call.allCases)
    func hostile(mode index: Int, call: Call) async throws {
        let (mode, code) = Self.modes[index]
        // detect ends normally when the server stays silent after the audio (no wake word heard): silentWake.
        if call == .detect && mode == "silent" { return }
        try await WyomingPeer.with(["--mode", "all", "--hostile", mode]) { peer in
            let error = await #expect(throws: WyomingError.self, "\(mode) \(call)") {
                try await Self.run(call, port: peer.port)
            }
            #expect(error?.code == code, "\(mode) \(call): \(String(describing: error))")
        }
    }

    @Test("a failed call is counted by call and reason and logged as a warning with its reason")
    func countedAndLogged() async throws {
        try await WyomingPeer.with(["--mode", "all", "--hostile", "huge-length"]) { peer in
            let metrics = TestMetrics()
            let log = LogLines()
            let logger = Logger(label: "test") { _ in log }
            let client = WyomingClient(host: "127.0.0.1", port: peer.port, timeouts: Self.timeouts, logger: logger, metricsFactory: metrics)
            await #expect(throws: WyomingError.self) { _ = try await client.recognize(text: "hello") }
            let counter = try metrics.expectCounter("gateway.wyoming.calls.failed.total", [("call", "recognize"), ("reason", "invalidLength")])
            #expect(counter.totalValue == 1)
            let other = try metrics.expectCounter("gateway.wyoming.calls.failed.total", [("call", "describe"), ("reason", "invalidLength")])
            #expect(other.totalValue == 0)
            let lines = log.lines
            #expect(lines.count == 1)
            #expect(lines.first?.level == .warning)
            #expect(lines.first?.metadata["reason"]?.description.contains("data_length 1099511627776 is over the limit") == true, "\(lines)")
            #expect(lines.first?.metadata["wyoming.server"]?.description == "127.0.0.1:\(peer.port)")
        }
    }

    @Test("a server that stops reading fails a streaming call at the deadline, however long the audio", .timeLimit(.minutes(1)))
    func stall() async throws {
        try await WyomingPeer.with(["--mode", "all", "--hostile", "stall"]) { peer in
            let client = WyomingClient(host: "127.0.0.1", port: peer.port, timeouts: Self.timeouts)
            let error = await #expect(throws: WyomingError.self) {
                _ = try await client.transcribe(language: "en", audio: EndlessAudio())
            }
            #expect(error?.code == .deadlineExceeded, "\(String(describing: error))")
            let wake = await #expect(throws: WyomingError.self) {
                try await client.detect(audio: EndlessAudio()) { _ in }
            }
            #expect(wake?.code == .deadlineExceeded, "\(String(describing: wake))")
        }
    }

    @Test("a silent wake-word server ends detect after the audio without an event")
    func silentWake() async throws {
        try await WyomingPeer.with(["--mode", "wake", "--hostile", "silent"]) { peer in
            let events = Recorder<WyomingWakeEvent>()
            let client = WyomingClient(host: "127.0.0.1", port: peer.port, timeouts: WyomingTimeouts(connect: .seconds(5), call: .milliseconds(200)))
            try await client.detect(audio: tone(chunks: 5)) { events.append($0) }
            #expect(events.elements.isEmpty)
        }
    }

    @Test("a server flooding audio stops at maxAudioBytes, one flooding transcript chunks at maxEventsPerCall")
    func flood() async throws {
        try await WyomingPeer.with(["--mode", "all", "--hostile", "flood"]) { peer in
            for call in [Call.synthesize, .transcribe] {
                let error = await #expect(throws: WyomingError.self) { try await Self.run(call, port: peer.port) }
                #expect(error?.code == .limitExceeded, "\(call): \(String(describing: error))")
            }
        }
    }

    @Test("cancelling the calling task ends a call to a silent server at once")
    func cancellation() async throws {
        try await WyomingPeer.with(["--mode", "all", "--hostile", "silent"]) { peer in
            let client = WyomingClient(host: "127.0.0.1", port: peer.port, timeouts: WyomingTimeouts(connect: .seconds(5), call: .seconds(600)))
            let (audio, feed) = AsyncStream<[UInt8]>.makeStream()
            let taken = AsyncStream<Void>.makeStream()
            // The audio tells when the client has taken a chunk, so the cancel comes mid-call.
            let marked = Announcing(base: audio, taken: taken.continuation)
            let call = Task { try await client.transcribe(language: "en", audio: marked) }
            feed.yield([0, 0])
            for await _ in taken.stream { break }
            call.cancel()
            let result = await call.result
            #expect(throws: CancellationError.self) { try result.get() }
            feed.finish()
        }
    }
}

/// Audio that says when the client took each chunk.
struct Announcing: AsyncSequence, Sendable {
    let base: AsyncStream<[UInt8]>
    let taken: AsyncStream<Void>.Continuation

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncStream<[UInt8]>.AsyncIterator
        let taken: AsyncStream<Void>.Continuation

        mutating func next() async -> [UInt8]? {
            let chunk = await base.next()
            if chunk != nil { taken.yield() }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), taken: taken) }
}

/// A log handler that keeps what was logged.
struct LogLines: LogHandler {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let storage = Recorder<Line>()
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    var lines: [Line] { storage.elements }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        storage.append(Line(level: event.level, message: "\(event.message)", metadata: metadata.merging(event.metadata ?? [:]) { _, new in new }))
    }
}

/// Silence without end, 64 KiB a chunk, as fast as the client takes it.
struct EndlessAudio: AsyncSequence, Sendable {
    struct AsyncIterator: AsyncIteratorProtocol {
        mutating func next() async -> [UInt8]? { [UInt8](repeating: 0, count: 64 * 1024) }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator() }
}
