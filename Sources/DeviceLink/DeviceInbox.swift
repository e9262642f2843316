import GatewayCore
import MQTT

/// One message a device sent on one of its channels, its topic already read: the device it
/// came from and the bytes it sent.
public struct DeviceMessage: Sendable {
    public var device: DeviceID
    public var payload: [UInt8]
    /// When the gateway took it from the broker.
    public var receivedAt: ContinuousClock.Instant

    public init(device: DeviceID, payload: [UInt8], receivedAt: ContinuousClock.Instant = .now) {
        self.device = device
        self.payload = payload
        self.receivedAt = receivedAt
    }
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
    /// Reads a message of `channel` from the broker; a topic of another channel is `notADeviceTopic`.
    static func read(_ message: MQTTMessage, channel: DeviceTopic.Channel) -> DeviceInbound {
        switch DeviceTopic.parse(message.topic) {
        case .success(let topic) where topic.channel == channel:
            .message(DeviceMessage(device: topic.device, payload: message.payload, receivedAt: message.receivedAt))
        case .success:
            .invalid(.notADeviceTopic)
        case .failure(let error):
            .invalid(error)
        }
    }
}
