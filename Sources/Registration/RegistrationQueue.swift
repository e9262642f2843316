import Synchronization

/// Who may run a registration now: sagas of different devices run concurrently, up to
/// `maxConcurrent`; requests for the same device run one after the other, in the order they came.
/// At most `limit` requests wait; one more is refused at once (``admit(_:)`` returns nil), so
/// a flood cannot grow memory. A waiting request starts as soon as a slot and its device are free,
/// so a slow registration of one device holds up only that device's later requests.
public final class RegistrationQueue: Sendable {
    /// A request let in: wait for its turn, run, then ``finish()``.
    public struct Admission: Sendable {
        fileprivate let id: UInt64
        fileprivate let queue: RegistrationQueue

        /// Returns once the request may run.
        public func wait() async { await queue.wait(id) }
        /// Frees the slot and the device; the next waiting requests start.
        public func finish() { queue.finish(id) }
    }

    private struct Entry {
        var id: UInt64
        var device: String
        var running = false
        var continuation: CheckedContinuation<Void, Never>?
    }

    private struct State {
        var nextID: UInt64 = 0
        /// In arrival order.
        var entries: [Entry] = []
        var running = 0
        var busyDevices: Set<String> = []
        var waiting: Int { entries.count - running }
    }

    public let maxConcurrent: Int
    public let limit: Int
    private let state = Mutex(State())

    public init(maxConcurrent: Int, limit: Int) {
        self.maxConcurrent = max(1, maxConcurrent)
        self.limit = max(0, limit)
    }

    /// Requests running and waiting now.
    public var counts: (running: Int, waiting: Int) { state.withLock { ($0.running, $0.waiting) } }

    /// Lets a request for `device` in, or refuses it (nil) when `limit` requests wait already.
    public func admit(_ device: String) -> Admission? {
        let (id, ready) = state.withLock { state -> (UInt64?, [CheckedContinuation<Void, Never>]) in
            let startsNow = state.running < maxConcurrent && !state.busyDevices.contains(device)
            guard startsNow || state.waiting < limit else { return (nil, []) }
            state.nextID += 1
            state.entries.append(Entry(id: state.nextID, device: device))
            return (state.nextID, Self.promote(&state, maxConcurrent))
        }
        for continuation in ready { continuation.resume() }
        return id.map { Admission(id: $0, queue: self) }
    }

    fileprivate func wait(_ id: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let runs = state.withLock { state -> Bool in
                guard let index = state.entries.firstIndex(where: { $0.id == id }) else { return true }
                if state.entries[index].running { return true }
                state.entries[index].continuation = continuation
                return false
            }
            if runs { continuation.resume() }
        }
    }

    fileprivate func finish(_ id: UInt64) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard let index = state.entries.firstIndex(where: { $0.id == id }) else { return [] }
            let entry = state.entries.remove(at: index)
            if entry.running {
                state.running -= 1
                state.busyDevices.remove(entry.device)
            }
            return Self.promote(&state, maxConcurrent)
        }
        for continuation in ready { continuation.resume() }
    }

    /// Starts waiting entries, oldest first, while there is a slot and their device is free.
    /// Returns the continuations to resume (after the lock is released).
    private static func promote(_ state: inout State, _ maxConcurrent: Int) -> [CheckedContinuation<Void, Never>] {
        var ready: [CheckedContinuation<Void, Never>] = []
        for index in state.entries.indices where state.running < maxConcurrent {
            let entry = state.entries[index]
            guard !entry.running, !state.busyDevices.contains(entry.device) else { continue }
            state.entries[index].running = true
            state.entries[index].continuation = nil
            state.running += 1
            state.busyDevices.insert(entry.device)
            if let continuation = entry.continuation { ready.append(continuation) }
        }
        return ready
    }
}
