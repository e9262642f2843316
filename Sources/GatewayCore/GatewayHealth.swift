import Synchronization

/// What the running parts report about themselves, for readiness, `STATUS=` and (later) the
/// admin API. Producers set their own fields; readers take a consistent ``Snapshot``.
public final class GatewayHealth: Sendable {
    public struct Snapshot: Sendable, Equatable {
        /// Connected to the local (device) broker.
        public var deviceBrokerConnected = false
        /// The device subscriptions are active on the current connection.
        public var deviceSubscribed = false
        /// Connected to the upstream broker.
        public var upstreamConnected = false
        /// Why the upstream link is down, when it is.
        public var upstreamLastError: String?
        /// Upstream publishes awaiting PUBACK.
        public var upstreamInflight = 0
        /// Largest arrival-to-commit time of a stored event since the last status line, in ms.
        public var maxCommitWindowMs: Double = 0
        public var eventsStored: Int64 = 0
        public var eventsDuplicate: Int64 = 0
        public var eventsRejected: Int64 = 0
        public var eventsForwarded: Int64 = 0
    }

    private let state = Mutex(State())

    private struct State {
        var snapshot = Snapshot()
        var readyWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var everSubscribed = false
    }

    public init() {}

    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    /// Updates the snapshot. Marking `deviceSubscribed` for the first time releases
    /// ``waitUntilDeviceSubscribed()``.
    public func update(_ body: (inout Snapshot) -> Void) {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            body(&state.snapshot)
            guard state.snapshot.deviceSubscribed, !state.everSubscribed else { return [] }
            state.everSubscribed = true
            defer { state.readyWaiters.removeAll() }
            return Array(state.readyWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Takes the commit-window maximum and resets it (one status period).
    public func takeMaxCommitWindow() -> Double {
        state.withLock { state in
            defer { state.snapshot.maxCommitWindowMs = 0 }
            return state.snapshot.maxCommitWindowMs
        }
    }

    /// Returns once the device subscription has been active at least once, or when the task is
    /// cancelled.
    public func waitUntilDeviceSubscribed() async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.everSubscribed || Task.isCancelled { return true }
                    state.readyWaiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.readyWaiters.removeValue(forKey: id) }?.resume()
        }
    }
}
