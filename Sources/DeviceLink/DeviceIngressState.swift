extension DeviceIngress {
    /// What the device ingress reports about itself, published as values (``DeviceIngress/state``)
    /// for readiness, `STATUS=` and the admin API. Only the ingress writes it.
    public struct State: Sendable, Equatable {
        /// Connected to the local (device) broker.
        public var deviceBrokerConnected = false
        /// The device subscriptions are active on the current connection.
        public var deviceSubscribed = false
        /// When the link last changed between down, connected and subscribed (ms since the epoch);
        /// nil before the first change.
        public var linkSinceMs: Int64?
        /// Why the device broker connection is down, or was last down (a failed connect or a
        /// disconnect); kept after it comes back, so the operator sees what happened.
        public var linkLastError: String?
        public var eventsStored: Int64 = 0
        public var eventsDuplicate: Int64 = 0
        public var eventsRejected: Int64 = 0
        /// ``eventsRejected`` by reason (`RejectReason` raw values, `invalid device id`, `invalid topic`).
        public var rejectedByReason: [String: Int64] = [:]
        /// Batches acknowledged after their commit so far; changes with every batch, so a reader
        /// that follows the updates knows a new ``lastCommitWindowMs`` from a repeated one.
        public var acknowledgedBatches: Int64 = 0
        /// Largest arrival-to-commit time of a stored event in the batch acknowledged last, in ms
        /// (0 when that batch stored nothing). The `STATUS=` line reports the largest per period.
        public var lastCommitWindowMs: Double = 0

        public init() {}
    }
}
