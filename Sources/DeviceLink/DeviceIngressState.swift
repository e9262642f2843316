extension DeviceIngress {
    /// What the device ingress reports about itself, published as values (``DeviceIngress/state``)
    /// for readiness, `STATUS=` and the admin API. Only the ingress writes it.
    public struct State: Sendable, Equatable {
        /// Connected to the local (device) broker.
        public var deviceBrokerConnected = false
        /// The device subscriptions are active on the current connection.
        public var deviceSubscribed = false
        public var eventsStored: Int64 = 0
        public var eventsDuplicate: Int64 = 0
        public var eventsRejected: Int64 = 0
        /// Batches acknowledged after their commit so far; changes with every batch, so a reader
        /// that follows the updates knows a new ``lastCommitWindowMs`` from a repeated one.
        public var acknowledgedBatches: Int64 = 0
        /// Largest arrival-to-commit time of a stored event in the batch acknowledged last, in ms
        /// (0 when that batch stored nothing). The `STATUS=` line reports the largest per period.
        public var lastCommitWindowMs: Double = 0

        public init() {}
    }
}
