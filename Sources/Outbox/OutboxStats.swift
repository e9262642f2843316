/// A summary of what the outbox holds, for `edge-gateway outbox stats` and status lines.
public struct OutboxStats: Sendable, Codable, Equatable {
    public struct Device: Sendable, Codable, Equatable {
        public var deviceId: String
        public var depth: Int64
        public var bytes: Int64
        public var oldestAgeSeconds: Double?
    }

    public var depth: Int64
    public var bytes: Int64
    public var oldestAgeSeconds: Double?
    public var devices: [Device]
    /// Dropped events by ``DropReason`` raw value.
    public var drops: [String: Int64]
    /// Rejected device messages by reason (`RejectReason.rawValue`), as counted by ingress.
    public var rejects: [String: Int64]
    /// What the store wrote, as persisted by the daemon with its upkeep (every
    /// `store.maintenanceIntervalSeconds`) and at close; nil for a store that never recorded it.
    public var wear: Wear? = nil

    public struct Wear: Sendable, Codable, Equatable {
        /// Commits (each one fsync of the WAL with `synchronous: full`).
        public var commits: Int64
        /// WAL frames written by commits (page size + 24 bytes each), in bytes; checkpoints not included.
        public var writtenBytes: Int64
        /// Seconds the daemon ran while these were counted.
        public var seconds: Int64
    }
}
