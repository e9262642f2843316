import Synchronization

/// The audio of one dialog on its way to the ML service: the session appends chunks as they
/// arrive, a stream reads them, and while the audio is short enough a second stream can read it
/// again from the start. That lets ``MLEndpointPool`` move a transcription that failed before
/// the service answered anything to another endpoint without losing what was already sent.
///
/// Past `replayLimitBytes` chunks already read are let go and the audio can no longer be
/// replayed (memory stays bounded whatever the session's length).
public final class ReplayableAudio: Sendable {
    struct State {
        var chunks: [[UInt8]] = []
        /// Chunks let go from the front (only once replay was given up).
        var dropped = 0
        var bytes = 0
        var replayable = true
        var finished = false
        var failure: MLError?
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        /// The position of the reader that is furthest on (chunks before it may be let go).
        var readerPosition = 0
        /// Bytes appended, and bytes the furthest reader has taken: the difference is what the
        /// ML stream has not caught up with yet.
        var appendedBytes = 0
        var takenBytes = 0
    }

    private let state = Mutex(State())
    public let replayLimitBytes: Int

    public init(replayLimitBytes: Int = 512 * 1024) {
        self.replayLimitBytes = replayLimitBytes
    }

    /// Adds one chunk (one Opus packet or a run of PCM bytes).
    public func append(_ chunk: [UInt8]) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.finished, state.failure == nil else { return [] }
            state.chunks.append(chunk)
            state.bytes += chunk.count
            state.appendedBytes += chunk.count
            if state.bytes > replayLimitBytes { state.replayable = false }
            Self.trim(&state)
            return Self.takeWaiters(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// No more audio: readers end after the last chunk.
    public func finish() {
        let waiters = state.withLock { state in
            state.finished = true
            return Self.takeWaiters(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// The audio is abandoned (session timed out, hit a limit, or the gateway is stopping):
    /// readers throw `error`, and what was held is let go at once.
    public func fail(_ error: MLError) {
        let waiters = state.withLock { state in
            if state.failure == nil { state.failure = error }
            state.dropped += state.chunks.count
            state.chunks.removeAll()
            state.bytes = 0
            return Self.takeWaiters(&state)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether a new reader would still see the audio from its start.
    public var canReplay: Bool { state.withLock { $0.replayable && $0.dropped == 0 } }

    public var isFinished: Bool { state.withLock { $0.finished } }

    /// Readers waiting for the next chunk (for tests to wait for a reader to be parked).
    var waitingReaders: Int { state.withLock { $0.waiters.count } }

    /// Bytes appended that no reader has taken yet: what a slow or stalled ML stream makes the
    /// gateway hold on top of the replay buffer.
    public var unreadBytes: Int { state.withLock { $0.appendedBytes - $0.takenBytes } }

    /// Reads the audio from the start (or from the oldest chunk still held) until ``finish()``.
    public func reader() -> Reader {
        Reader(audio: self, position: state.withLock { $0.dropped })
    }

    public struct Reader: AsyncSequence, Sendable {
        public typealias Element = [UInt8]
        let audio: ReplayableAudio
        let position: Int

        public func makeAsyncIterator() -> Iterator { Iterator(audio: audio, position: position) }

        public struct Iterator: AsyncIteratorProtocol {
            let audio: ReplayableAudio
            var position: Int

            public mutating func next() async throws(MLError) -> [UInt8]? {
                while true {
                    switch audio.take(at: position) {
                    case .chunk(let chunk):
                        position += 1
                        return chunk
                    case .end:
                        return nil
                    case .failure(let error):
                        throw error
                    case .wait:
                        await audio.waitForChange(beyond: position)
                        if Task.isCancelled { throw MLError(.unavailable, "the audio stream was cancelled") }
                    }
                }
            }
        }
    }

    enum Take {
        case chunk([UInt8])
        case end
        case failure(MLError)
        case wait
    }

    func take(at position: Int) -> Take {
        state.withLock { state in
            if let failure = state.failure { return .failure(failure) }
            let index = position - state.dropped
            if index >= 0, index < state.chunks.count {
                let chunk = state.chunks[index]
                if position >= state.readerPosition {
                    state.readerPosition = position + 1
                    state.takenBytes += chunk.count
                }
                Self.trim(&state)
                return .chunk(chunk)
            }
            return state.finished ? .end : .wait
        }
    }

    func waitForChange(beyond position: Int) async {
        let id = state.withLock { state -> Int in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state -> Bool in
                    let available = position - state.dropped < state.chunks.count
                    if available || state.finished || state.failure != nil || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    private static func takeWaiters(_ state: inout State) -> [CheckedContinuation<Void, Never>] {
        let waiters = Array(state.waiters.values)
        state.waiters.removeAll()
        return waiters
    }

    /// Once replay is given up, chunks every reader has passed are let go.
    private static func trim(_ state: inout State) {
        guard !state.replayable else { return }
        let passed = state.readerPosition - state.dropped
        guard passed > 0 else { return }
        let count = min(passed, state.chunks.count)
        state.bytes -= state.chunks[0..<count].reduce(0) { $0 + $1.count }
        state.chunks.removeFirst(count)
        state.dropped += count
    }
}
