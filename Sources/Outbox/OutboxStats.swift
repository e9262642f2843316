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
}
