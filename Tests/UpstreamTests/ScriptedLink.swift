import Synchronization
import Upstream

@testable import MQTT

/// An upstream link played by the test instead of a broker: the test says when a connection comes
/// up or goes down and which publishes the broker acknowledges; the link records every publish.
///
/// It keeps `MQTTClient`'s rules that the forwarder relies on: each connection has a new
/// generation and starts its message ids again at 1 (libmosquitto makes a handle per connection),
/// a publish for a generation that is not up fails with `.notConnected`, one larger than
/// `maxPayloadBytes` with `.invalidMessage`, and ``stop()`` reports the end of the connection and
/// ends ``events``.
final class ScriptedLink: UpstreamLink {
    /// One publish as the broker would have received it.
    struct Publish: Sendable, Equatable {
        var topic: String
        var payload: [UInt8]
        var qos: Int32
        var retain: Bool
        var ticket: PublishTicket

        /// The `eventId` of the envelope (see ``envelope(device:eventID:padding:)``).
        var eventID: String? { envelopeEventID(payload) }
    }

    private struct Script {
        var started = false
        var stopped = false
        var generation = 0
        var connected: Int?
        var nextMessageID: Int32 = 0
        var published: [Publish] = []
        /// Publishes of the current connection not acknowledged yet, oldest first.
        var unacknowledged: [Publish] = []
        /// The most publishes that ever awaited PUBACK at once.
        var mostUnacknowledged = 0
    }

    let configuration: MQTTClientConfiguration
    let events: AsyncStream<MQTTEvent>
    let messages = MessageBuffer(capacity: 64)
    private let continuation: AsyncStream<MQTTEvent>.Continuation
    private let maxPayloadBytes: Int
    private let script = Mutex(Script())

    init(configuration: MQTTClientConfiguration, maxPayloadBytes: Int = 256 * 1024) {
        self.configuration = configuration
        self.maxPayloadBytes = maxPayloadBytes
        (events, continuation) = AsyncStream.makeStream(of: MQTTEvent.self, bufferingPolicy: .unbounded)
    }

    // MARK: - UpstreamLink

    func start() {
        script.withLock { script in
            precondition(!script.started, "ScriptedLink.start() called twice")
            script.started = true
        }
    }

    func publish(
        topic: String, payload: [UInt8], qos: Int32, retain: Bool, onGeneration generation: Int?
    ) throws(MQTTError) -> PublishTicket {
        let result: Result<PublishTicket, MQTTError> = script.withLock { script in
            guard !script.stopped, let current = script.connected, generation == nil || generation == current else {
                return .failure(MQTTError(.notConnected, "not connected to \(configuration.host):\(configuration.port)"))
            }
            guard payload.count <= maxPayloadBytes else {
                return .failure(MQTTError(.invalidMessage, "cannot publish to \(topic): payload too large"))
            }
            script.nextMessageID += 1
            let ticket = PublishTicket(generation: current, messageID: script.nextMessageID)
            let publish = Publish(topic: topic, payload: payload, qos: qos, retain: retain, ticket: ticket)
            script.published.append(publish)
            script.unacknowledged.append(publish)
            script.mostUnacknowledged = max(script.mostUnacknowledged, script.unacknowledged.count)
            return .success(ticket)
        }
        return try result.get()
    }

    func stop() async {
        script.withLock { script in
            guard !script.stopped else { return }
            script.stopped = true
            if let generation = script.connected {
                continuation.yield(.disconnected(generation: generation, reason: "disconnected"))
            }
            script.connected = nil
            script.unacknowledged.removeAll()
            continuation.finish()
        }
        messages.finish()
    }

    /// The broker delivers a message on one of the link's subscriptions.
    func deliver(topic: String, payload: String) {
        messages.push(MQTTMessage(topic: Array(topic.utf8), payload: Array(payload.utf8), qos: 1))
    }

    // MARK: - The test's side

    /// A connection comes up (CONNACK).
    func connect() {
        script.withLock { script in
            precondition(script.started && !script.stopped, "connect() on a link that is not running")
            precondition(script.connected == nil, "connect() while connected")
            script.generation += 1
            script.connected = script.generation
            script.nextMessageID = 0
            continuation.yield(.connected(generation: script.generation))
        }
    }

    /// The connection is lost; PUBACKs of its publishes never come.
    func drop(reason: String) {
        script.withLock { script in
            guard let generation = script.connected else { return }
            script.connected = nil
            script.unacknowledged.removeAll()
            continuation.yield(.disconnected(generation: generation, reason: reason))
        }
    }

    /// The next attempt goes to another address (a failover), as `MQTTClient` reports it.
    func moveAddress(from: MQTTBrokerAddress, to: MQTTBrokerAddress, reason: String) {
        continuation.yield(.addressChanged(from: from, to: to, reason: reason))
    }

    /// A connect attempt fails before CONNACK.
    func refuse(reason: String) {
        script.withLock { script in
            precondition(script.connected == nil, "refuse(reason:) while connected")
            continuation.yield(.connectFailed(reason: reason))
        }
    }

    /// The broker acknowledges these publishes (those of the current connection not acknowledged yet).
    func acknowledge(_ publishes: [Publish]) {
        script.withLock { script in
            for publish in publishes {
                guard let index = script.unacknowledged.firstIndex(of: publish) else { continue }
                script.unacknowledged.remove(at: index)
                continuation.yield(.published([publish.ticket]))
            }
        }
    }

    /// The broker acknowledges everything awaiting PUBACK.
    func acknowledgeAll() {
        acknowledge(unacknowledged)
    }

    var isStarted: Bool { script.withLock { $0.started } }
    var isStopped: Bool { script.withLock { $0.stopped } }
    var isConnected: Bool { script.withLock { $0.connected != nil } }
    /// The current connection's generation (the last one that came up).
    var generation: Int { script.withLock { $0.generation } }
    /// Every publish, in the order they were made.
    var published: [Publish] { script.withLock { $0.published } }
    var unacknowledged: [Publish] { script.withLock { $0.unacknowledged } }
    var mostUnacknowledged: Int { script.withLock { $0.mostUnacknowledged } }

    /// The publishes made on connection `generation`.
    func published(onGeneration generation: Int) -> [Publish] {
        published.filter { $0.ticket.generation == generation }
    }
}
