import Synchronization

/// Counts batches waiting for their commit and makes the reader wait when `limit` are out.
final class BatchWindow: Sendable {
    private struct State {
        var outstanding = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = max(limit, 1)
    }

    /// Takes a slot, waiting while all are taken.
    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state in
                if state.outstanding < limit {
                    state.outstanding += 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    /// Gives a slot back; a waiting reader takes it over directly.
    func release() {
        let next: CheckedContinuation<Void, Never>? = state.withLock { state in
            if state.waiters.isEmpty {
                state.outstanding -= 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }

    /// Waits until every slot is back.
    func drain() async {
        for _ in 0..<limit { await acquire() }
    }
}
