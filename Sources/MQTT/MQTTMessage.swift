/// A message received from the broker. The topic is kept as bytes: nothing here assumes the
/// sender wrote valid UTF-8.
public struct MQTTMessage: Sendable {
    public var topic: [UInt8]
    public var payload: [UInt8]
    public var qos: Int32
    /// When the network thread received it (for the arrival-to-commit window).
    public var receivedAt: ContinuousClock.Instant

    public init(topic: [UInt8], payload: [UInt8], qos: Int32, receivedAt: ContinuousClock.Instant = .now) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.receivedAt = receivedAt
    }

    public var topicString: String { String(decoding: topic, as: UTF8.self) }
}

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
    /// The broker acknowledged (PUBACK) a QoS 1 publish.
    case published(PublishTicket)
}

/// Identifies a publish: the connection it went out on and its message id there.
public struct PublishTicket: Hashable, Sendable {
    public var generation: Int
    public var messageID: Int32
}
