import Foundation
import Synchronization

/// Captured frames as an `AsyncSequence`, read by an ``ALSACapture`` on a thread of its own.
///
/// Guarantees:
/// - The blocking `snd_pcm_readi` runs on a dedicated `Thread`, never on Swift's cooperative pool.
/// - Between the thread and the consumer sits a bounded buffer of `bufferedFrames` frames. When the
///   consumer falls behind and the buffer is full, the **oldest** frames are dropped (the consumer
///   always gets the most recent audio) and counted in ``droppedFrames``. The capture itself never
///   waits for the consumer, so the device never overruns because of a slow consumer.
/// - The thread stops and the PCM is closed when ``stop()`` is called, when the consuming task is
///   cancelled, when the consumer's loop ends (its iterator is released), or when the stream itself is
///   released without anyone iterating it. The PCM is closed before the sequence ends, so when iteration
///   finishes (or ``waitUntilClosed()`` returns) the device can be opened again.
/// - A capture error ends the sequence by throwing that ``AudioError``; the frames before it are
///   delivered first.
/// - One consumer: iterate it once, from one task.
///
/// ```swift
/// let stream = try CaptureStream.start(device: "plughw:1,0")
/// var vad = VoiceActivityDetector()
/// for try await frame in stream {          // [Int16], 20 ms
///     if let event = vad.process(frame) { ... }
/// }
/// ```
public final class CaptureStream: AsyncSequence, Sendable {
    public typealias Element = [Int16]
    public typealias Failure = AudioError

    /// The capture's device, format and frame size (fixed when it was opened).
    public let device: String
    public let sampleRate: Int
    public let channels: Int
    public let periodFrames: Int
    /// How many frames the buffer between the capture thread and the consumer holds.
    public let bufferedFrames: Int

    /// Frames dropped because the consumer fell behind (oldest first). Thread-safe.
    public var droppedFrames: Int { state.dropped.load(ordering: .relaxed) }
    /// Overruns the capture recovered (the capture thread itself fell behind the device). Thread-safe.
    public var overruns: Int { counters.xruns.load(ordering: .relaxed) }
    /// Whether the capture thread has ended and closed the PCM.
    public var isClosed: Bool { state.lifecycle.withLock { $0.closed } }

    private let frames: AsyncThrowingStream<[Int16], any Error>
    private let state: CaptureStreamState
    private let counters: ALSACounters

    /// Opens `device` (see ``ALSACapture/open(device:sampleRate:channels:periodFrames:bufferPeriods:configuration:paced:)``)
    /// and starts capturing at once; open errors are thrown here, later errors end the sequence.
    ///
    /// - Parameter bufferedFrames: frames held for a slow consumer before the oldest are dropped
    ///   (50 × 20 ms = 1 s).
    public static func start(
        device: String,
        sampleRate: Int = 16000,
        channels: Int = 1,
        periodFrames: Int = 320,
        bufferPeriods: Int = 8,
        configuration: String? = nil,
        paced: Bool = true,
        bufferedFrames: Int = 50
    ) throws(AudioError) -> CaptureStream {
        let capture = try ALSACapture.open(
            device: device, sampleRate: sampleRate, channels: channels, periodFrames: periodFrames,
            bufferPeriods: bufferPeriods, configuration: configuration, paced: paced
        )
        return start(capture: capture, bufferedFrames: bufferedFrames)
    }

    /// Starts capturing from an opened `capture`, which the stream now owns (it closes it).
    public static func start(capture: sending ALSACapture, bufferedFrames: Int = 50) -> CaptureStream {
        let stream = CaptureStream(capture: capture, bufferedFrames: bufferedFrames)
        stream.launch()
        return stream
    }

    private let handoff: Handoff
    private let continuation: AsyncThrowingStream<[Int16], any Error>.Continuation

    private init(capture: sending ALSACapture, bufferedFrames: Int) {
        device = capture.device
        sampleRate = capture.sampleRate
        channels = capture.channels
        periodFrames = capture.periodFrames
        counters = capture.counters
        self.bufferedFrames = Swift.max(bufferedFrames, 1)
        state = CaptureStreamState()
        handoff = Handoff(capture)
        (frames, continuation) = AsyncThrowingStream<[Int16], any Error>.makeStream(
            bufferingPolicy: .bufferingNewest(Swift.max(bufferedFrames, 1))
        )
    }

    deinit {
        state.requestStop()
    }

    private func launch() {
        let state = state
        let continuation = continuation
        let handoff = handoff
        continuation.onTermination = { _ in state.requestStop() }
        let thread = Thread {
            guard let capture = handoff.take() else { return }
            var failure: AudioError?
            while !state.stopRequested {
                do throws(AudioError) {
                    let frame = try capture.read()
                    switch continuation.yield(frame) {
                    case .dropped:
                        state.dropped.add(1, ordering: .relaxed)
                    case .terminated:
                        state.requestStop()
                    case .enqueued:
                        break
                    @unknown default:
                        break
                    }
                } catch {
                    failure = error
                    break
                }
            }
            // Close first, so a consumer that sees the end can reopen the device at once.
            capture.close()
            if let failure {
                continuation.finish(throwing: failure)
            } else {
                continuation.finish()
            }
            state.markClosed()
        }
        thread.name = "audio.capture"
        thread.start()
    }

    /// Asks the capture thread to stop; it closes the PCM within about one period and the sequence
    /// ends after the frames already buffered. Idempotent and non-blocking.
    public func stop() {
        state.requestStop()
    }

    /// Returns once the capture thread has closed the PCM (at once if it already has).
    public func waitUntilClosed() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let resumeNow = state.lifecycle.withLock { lifecycle -> Bool in
                if lifecycle.closed { return true }
                lifecycle.waiters.append(waiter)
                return false
            }
            if resumeNow { waiter.resume() }
        }
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(base: frames.makeAsyncIterator(), lifetime: IteratorLifetime(stream: self))
    }

    /// Delivers frames; ends with `nil` after ``CaptureStream/stop()``, or throws the capture's ``AudioError``.
    public struct Iterator: AsyncIteratorProtocol {
        public typealias Element = [Int16]
        public typealias Failure = AudioError

        private var base: AsyncThrowingStream<[Int16], any Error>.Iterator
        private let lifetime: IteratorLifetime

        fileprivate init(base: AsyncThrowingStream<[Int16], any Error>.Iterator, lifetime: IteratorLifetime) {
            self.base = base
            self.lifetime = lifetime
        }

        public mutating func next() async throws(AudioError) -> [Int16]? {
            do {
                return try await base.next()
            } catch {
                throw Self.audioError(error, device: lifetime.stream.device)
            }
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(AudioError) -> [Int16]? {
            do {
                return try await base.next(isolation: actor)
            } catch {
                throw Self.audioError(error, device: lifetime.stream.device)
            }
        }

        private static func audioError(_ error: any Error, device: String) -> AudioError {
            error as? AudioError
                ?? AudioError(code: .io, device: device, message: "Capture from '\(device)' failed: \(error)")
        }
    }
}

/// Stops the capture when the consumer's iterator (and every copy of it) is released, i.e. when its
/// loop ends; keeps the stream alive while someone iterates it.
private final class IteratorLifetime: Sendable {
    let stream: CaptureStream

    init(stream: CaptureStream) {
        self.stream = stream
    }

    deinit {
        stream.stop()
    }
}

/// What the capture thread and the stream's users share; every field is atomic or behind a Mutex.
private final class CaptureStreamState: Sendable {
    struct Lifecycle {
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let stop = Atomic<Bool>(false)
    let dropped = Atomic<Int>(0)
    let lifecycle = Mutex(Lifecycle())

    var stopRequested: Bool { stop.load(ordering: .acquiring) }

    func requestStop() {
        stop.store(true, ordering: .releasing)
    }

    func markClosed() {
        let waiters = lifecycle.withLock { lifecycle in
            lifecycle.closed = true
            defer { lifecycle.waiters = [] }
            return lifecycle.waiters
        }
        // Resumed after the lock is released.
        for waiter in waiters { waiter.resume() }
    }
}

/// Moves the (non-`Sendable`) capture from the caller to the capture thread exactly once. It arrives
/// through a `sending` parameter, so the caller keeps no reference; the Mutex makes `take()` the only
/// way out, so only one thread ever gets it.
private final class Handoff: Sendable {
    private let slot: Mutex<ALSACapture?>

    init(_ capture: sending ALSACapture) {
        slot = Mutex(capture)
    }

    func take() -> ALSACapture? {
        slot.withLock { slot in
            let capture = slot
            slot = nil
            return capture
        }
    }
}
