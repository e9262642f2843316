import Logging
import MQTT

/// What ``UpstreamForwarder`` needs of its connection to the upstream broker: start it, follow its
/// connection changes and PUBACKs, publish on one connection, stop it.
///
/// `MQTTClient` is the link of the daemon (conforming below); tests script one in memory, so the
/// forwarder's rules can be checked without a broker.
///
/// A link must behave as `MQTTClient` does:
/// - ``events`` has one consumer and reports `.connected(generation:)` for each connection (with
///   CONNACK), `.disconnected` when it ends, `.connectFailed` for attempts that did not get that
///   far, and `.published(_:)` with the PUBACKs of QoS 1 publishes, in order (``configuration`` has
///   `reportsPublishAcks` set); it ends once ``stop()`` has finished.
/// - ``publish(topic:payload:qos:retain:onGeneration:)`` fails with `.notConnected` unless the
///   connection `generation` names is up, and with `.invalidMessage` for what no broker would take.
public protocol UpstreamLink: AnyObject, Sendable {
    /// The broker settings the link was made with.
    var configuration: MQTTClientConfiguration { get }
    /// The one of `configuration.addresses` in use (or tried next); a change is reported as
    /// `.addressChanged` in ``events``.
    var currentAddress: MQTTBrokerAddress { get }
    /// Connection changes and PUBACKs. One consumer.
    var events: AsyncStream<MQTTEvent> { get }
    /// Messages from the broker on the link's subscriptions (cloud → hub: commands, shadow
    /// updates), in arrival order; ends once ``stop()`` has finished. One consumer.
    var messages: MessageBuffer { get }
    /// Starts connecting (and reconnecting). Call once.
    func start()
    /// Publishes on the connection `generation` (any, when `nil`); the returned ticket comes back
    /// in `.published(_:)` when the broker acknowledges it.
    @discardableResult
    func publish(
        topic: String, payload: [UInt8], qos: Int32, retain: Bool, onGeneration generation: Int?
    ) throws(MQTTError) -> PublishTicket
    /// Disconnects (after writing what is queued) and ends ``events``.
    func stop() async
}

/// Takes a batch of messages the cloud sent on the upstream link's subscriptions.
public typealias CloudMessageHandler = @Sendable ([MQTTMessage]) async -> Void

/// Makes the link for new broker settings (configuration reload).
public typealias UpstreamLinkFactory = @Sendable (MQTTClientConfiguration) -> any UpstreamLink

extension MQTTClient: UpstreamLink {}

extension UpstreamLink {
    /// A link that does not rotate: its first address.
    public var currentAddress: MQTTBrokerAddress { configuration.addresses[0] }
}
