extension UpstreamForwarder {
    /// What the upstream forwarder reports about itself, published as values
    /// (``UpstreamForwarder/state``) for readiness, `STATUS=` and the admin API. Only the
    /// forwarder writes it.
    public struct State: Sendable, Equatable {
        /// Connected to the upstream broker.
        public var upstreamConnected = false
        /// Why the upstream link is down, when it is.
        public var upstreamLastError: String?
        /// The upstream broker's `host:port` in use (of `upstream.hosts`, after failovers and reloads).
        public var upstreamBroker = ""
        /// Every configured upstream address (`upstream.hosts`), in order.
        public var upstreamAddresses: [String] = []
        /// Moves to another upstream address after a failure, since the start.
        public var upstreamFailovers: Int64 = 0
        /// When the link last went up or down (ms since the epoch); nil before the first change.
        public var upstreamSinceMs: Int64?
        /// Upstream publishes awaiting PUBACK.
        public var upstreamInflight = 0
        /// Events acknowledged by the upstream broker and removed from the outbox so far.
        public var eventsForwarded: Int64 = 0

        public init() {}
    }
}
