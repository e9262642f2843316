/// A change of the connection, or the broker's acknowledgement of one of our publishes.
public enum MQTTEvent: Sendable, Equatable {
    /// CONNACK accepted. `generation` counts connections since the client started.
    case connected(generation: Int)
    /// All configured subscriptions were granted on this connection.
    case subscribed(generation: Int)
    /// A connect attempt failed (before CONNACK), with the reason.
    case connectFailed(reason: String)
    /// An established connection ended.
    case disconnected(generation: Int, reason: String)
    /// The broker acknowledged (PUBACK) these QoS 1 publishes, in the order the PUBACKs came:
    /// those one pass of the network loop read, so a burst of PUBACKs is one event, not one each.
    case published([PublishTicket])
    /// The next attempt goes to another of the configured addresses (failover), after an attempt
    /// at `from` ended (a failed connect or a lost connection) for `reason`.
    case addressChanged(from: MQTTBrokerAddress, to: MQTTBrokerAddress, reason: String)
}

/// Identifies a publish: the connection it went out on and its message id there.
public struct PublishTicket: Hashable, Sendable {
    public var generation: Int
    public var messageID: Int32
}
