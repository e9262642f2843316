import GatewayCore
import MQTT

/// One message a device sent on one of its channels, its topic already read: the device it
/// came from, the channel and the bytes it sent.
public struct DeviceMessage: Sendable {
    public var device: DeviceID
    public var channel: DeviceTopic.Channel
    public var payload: [UInt8]
    /// When the gateway took it from the broker.
    public var receivedAt: ContinuousClock.Instant

    public init(device: DeviceID, channel: DeviceTopic.Channel, payload: [UInt8], receivedAt: ContinuousClock.Instant = .now) {
        self.device = device
        self.channel = channel
        self.payload = payload
        self.receivedAt = receivedAt
    }
}

/// The state of a connection to the device broker, as its readers need it.
public enum LinkChange: Sendable, Equatable {
    /// Connected (CONNACK).
    case connected
    /// Every subscription of the connection was granted.
    case subscribed
    /// The connection is down, or a connect failed, with the reason.
    case down(reason: String)
}

/// What arrived on a device channel: a message of a device, or a topic that is not one (counted
/// and logged by the consumer, which knows what it expected).
public enum DeviceInbound: Sendable {
    case message(DeviceMessage)
    case invalid(DeviceTopic.ParseError)
}

/// A push-to-talk request on `hub/{hubId}/listen`: its body (optionally `{"seconds": n}`).
public struct ListenRequest: Sendable {
    public var payload: [UInt8]

    public init(payload: [UInt8]) {
        self.payload = payload
    }
}

/// The messages of one channel of the device edge, in arrival order, in batches of what was
/// available: a typed view of one broker connection (with its backpressure: while the consumer
/// does not read, the connection stops reading from the broker), or, for tests and for the hub's
/// own sources, of an `AsyncStream`.
///
/// One consumer. ``pauseReading()`` stops taking new messages (those already taken still arrive);
/// the sequence then ends.
public struct DeviceInbox<Item: Sendable>: AsyncSequence, Sendable {
    public typealias Element = [Item]
    public typealias Failure = Never

    private enum Source: Sendable {
        case connection(MessageBuffer, @Sendable (MQTTMessage) -> Item?)
        case stream(AsyncStream<[Item]>)
    }

    private let source: Source
    private let pause: @Sendable () -> Void

    /// A view of a broker connection's messages; `transform` reads one (nil: skip it).
    init(client: MQTTClient, transform: @escaping @Sendable (MQTTMessage) -> Item?) {
        source = .connection(client.messages, transform)
        pause = { client.pauseReading() }
    }

    /// An inbox fed by a stream (tests, or a source inside the hub); `onPause` is called by
    /// ``pauseReading()`` and should finish the stream.
    public init(_ stream: AsyncStream<[Item]>, onPause: @escaping @Sendable () -> Void) {
        source = .stream(stream)
        pause = onPause
    }

    /// Stops taking messages; the sequence ends once what was taken has been read.
    public func pauseReading() { pause() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        fileprivate enum State {
            case connection(MessageBuffer.AsyncIterator, @Sendable (MQTTMessage) -> Item?)
            case stream(AsyncStream<[Item]>.Iterator)
        }
        fileprivate var state: State

        public mutating func next() async -> [Item]? {
            switch state {
            case .connection(var iterator, let transform):
                defer { state = .connection(iterator, transform) }
                while let batch = await iterator.next() {
                    let items = batch.compactMap(transform)
                    if !items.isEmpty { return items }
                }
                return nil
            case .stream(var iterator):
                defer { state = .stream(iterator) }
                return await iterator.next()
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        switch source {
        case .connection(let buffer, let transform): AsyncIterator(state: .connection(buffer.makeAsyncIterator(), transform))
        case .stream(let stream): AsyncIterator(state: .stream(stream.makeAsyncIterator()))
        }
    }
}

extension DeviceInbound {
    /// Reads a message from the broker that should be on one of `channels`; a topic of another
    /// channel is `notADeviceTopic`.
    static func read(_ message: MQTTMessage, channels: Set<DeviceTopic.Channel>) -> DeviceInbound {
        switch DeviceTopic.parse(message.topic) {
        case .success(let topic) where channels.contains(topic.channel):
            .message(DeviceMessage(device: topic.device, channel: topic.channel, payload: message.payload, receivedAt: message.receivedAt))
        case .success:
            .invalid(.notADeviceTopic(escaped: DeviceID.escapedForLog(message.topic)))
        case .failure(let error):
            .invalid(error)
        }
    }
}

extension LinkChange {
    /// The change an MQTT connection event makes (a PUBACK makes none).
    init?(_ event: MQTTEvent) {
        switch event {
        case .connected: self = .connected
        case .subscribed: self = .subscribed
        case .disconnected(_, let reason), .connectFailed(let reason): self = .down(reason: reason)
        case .published, .addressChanged: return nil
        }
    }
}
