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
