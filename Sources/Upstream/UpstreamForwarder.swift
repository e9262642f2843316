import Foundation
import GatewayCore
import Logging
import MQTT
import Metrics
import Outbox
import Reporting
import ServiceLifecycle
import Synchronization

/// Drains the outbox to the upstream broker (CONTRACTS.md §2).
///
/// Events are published with QoS 1 in sequence order with at most `inflight` awaiting PUBACK, and
/// removed from the outbox on PUBACK. Every (re)connect starts again from the oldest stored event,
/// so per-device order holds across reconnects and restarts; an event whose PUBACK was lost is
/// sent again with the same `eventId` (at least once). When there is nothing to send it waits for
/// the outbox's next commit and does not poll.
///
/// ``update(client:configuration:)`` (configuration reload) moves to new broker settings: no new
/// publishes start, the ones awaiting PUBACK get up to `shutdownGrace` to be acknowledged, then
/// the old connection closes and the new one starts again from the oldest stored event. Nothing
/// is lost; an event is sent twice only when its PUBACK did not come within the grace.
///
/// The connection is an ``UpstreamLink``: an `MQTTClient` in the daemon, a scripted one in
/// `Tests/UpstreamTests`.
public final class UpstreamForwarder: Service, Sendable {
    private let client: any UpstreamLink
    private let makeLink: UpstreamLinkFactory
    private let outbox: Outbox
    private let configuration: UpstreamConfiguration
    private let publisher = StatePublisher(State())
    private let logger: Logger
    private let metrics = ForwarderMetrics()
    private let signals = Mutex<AsyncStream<Signal>.Continuation?>(nil)
    /// Takes what the cloud sends on the link's subscriptions; awaited, so a slow taker slows the
    /// link's reading (the message buffer pauses libmosquitto) instead of piling messages up.
    private let inbound: CloudMessageHandler

    /// Forwards over `client`; a reload makes a new `MQTTClient` (logging as `<label>.mqtt`).
    public convenience init(
        client: MQTTClient, outbox: Outbox, configuration: UpstreamConfiguration, logger: Logger,
        inbound: @escaping CloudMessageHandler = { _ in }
    ) {
        let label = logger.label + ".mqtt"
        self.init(
            link: client, outbox: outbox, configuration: configuration, logger: logger,
            makeLink: { MQTTClient(configuration: $0, logger: Logger(label: label)) }, inbound: inbound)
    }

    /// Forwards over `link`; a reload asks `makeLink` for the link to the new broker settings.
    public init(
        link: any UpstreamLink, outbox: Outbox, configuration: UpstreamConfiguration, logger: Logger,
        makeLink: @escaping UpstreamLinkFactory, inbound: @escaping CloudMessageHandler = { _ in }
    ) {
        self.inbound = inbound
        precondition(link.configuration.reportsPublishAcks, "the upstream client must report PUBACKs")
        self.client = link
        self.makeLink = makeLink
        self.outbox = outbox
        self.configuration = configuration
        self.logger = logger
        let address = link.currentAddress
        publisher.update {
            $0.upstreamBroker = address.description
            $0.upstreamAddresses = link.configuration.addresses.map(\.description)
        }
        metrics.addressInUse(address, of: link.configuration.addresses)
    }

    /// Sets the link's up/down state, and since when when it changed.
    private func setConnected(_ connected: Bool, error: String?, in state: inout State) {
        if state.upstreamConnected != connected || state.upstreamSinceMs == nil {
            state.upstreamSinceMs = Int64(Date().timeIntervalSince1970 * 1000)
        }
        state.upstreamConnected = connected
        state.upstreamLastError = error
    }

    /// The forwarder's state as values (link up, last error, in flight, forwarded), for readers.
    public var state: PublishedState<State> { publisher.reader }

    /// Moves to new broker and forwarding settings (see the type's documentation). Ignored once
    /// the forwarder has stopped.
    public func update(client: MQTTClientConfiguration, configuration: UpstreamConfiguration) {
        _ = signals.withLock { $0?.yield(.reconfigure(client, configuration)) }
    }

    enum Signal: Sendable {
        /// An event of the connection of this epoch (one per client; a reload starts a new one).
        case mqtt(epoch: Int, MQTTEvent)
        case reconfigure(MQTTClientConfiguration, UpstreamConfiguration)
        /// The grace for PUBACKs before a switch has passed.
        case switchNow(epoch: Int)
        case committed
        case shutdown
        case graceExpired
        /// Try reading and publishing again after an error that no other signal would follow.
        case retry
    }

    public func run() async throws {
        let (signals, continuation) = AsyncStream.makeStream(of: Signal.self)
        self.signals.withLock { $0 = continuation }
        client.start()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [client] in
                for await event in client.events { continuation.yield(.mqtt(epoch: 0, event)) }
            }
            group.addTask { [client, inbound] in
                for await batch in client.messages { await inbound(batch) }
            }
            group.addTask { [outbox] in
                for await _ in outbox.committedSequences { continuation.yield(.committed) }
            }
            var state = ForwardingState(client: client, settings: configuration)
            await withGracefulShutdownHandler {
                for await signal in signals {
                    if case .reconfigure(let clientSettings, let settings) = signal {
                        state.pending = (clientSettings, settings)
                        logger.info(
                            "upstream settings changed; switching once the publishes under way are acknowledged",
                            metadata: [
                                "upstream.inflight": "\(state.inflight.count)",
                                "upstream.broker": "\(clientSettings.addresses.map(\.description).joined(separator: ","))",
                            ])
                        let (epoch, grace) = (state.epoch, state.settings.shutdownGrace)
                        Task {
                            try? await Task.sleep(for: grace)
                            continuation.yield(.switchNow(epoch: epoch))
                        }
                    }
                    var step = await handle(signal, state: &state, signals: continuation)
                    if step == .switchConnection {
                        let next = await switchConnection(&state)
                        let epoch = state.epoch
                        group.addTask { for await event in next.events { continuation.yield(.mqtt(epoch: epoch, event)) } }
                        group.addTask { [inbound] in for await batch in next.messages { await inbound(batch) } }
                        step = await handle(.retry, state: &state, signals: continuation)
                    }
                    if step == .stop { break }
                }
            } onGracefulShutdown: {
                continuation.yield(.shutdown)
            }
            self.signals.withLock { $0 = nil }
            continuation.finish()
            await state.client.stop()
            group.cancelAll()
        }
        logger.info("upstream forwarder stopped")
    }

    /// Closes the connection and opens one with the pending settings; forwarding restarts from
    /// the oldest stored event on the new connection's `.connected`.
    private func switchConnection(_ state: inout ForwardingState) async -> any UpstreamLink {
        guard let (clientSettings, settings) = state.pending else { return state.client }
        if !state.inflight.isEmpty {
            logger.warning(
                "upstream switch: publishes not acknowledged within the grace are sent again on the new connection",
                metadata: ["upstream.inflight": "\(state.inflight.count)"])
        }
        flushAcks(&state)
        // The new connection starts from the oldest stored event: the acknowledged ones must be
        // gone from the table by then, or they would go to the new broker too.
        await outbox.waitForQueuedWrites()
        let previous = state.client.configuration.addresses
        await state.client.stop()
        let next = makeLink(clientSettings)
        publisher.update {
            setConnected(false, error: nil, in: &$0)
            $0.upstreamInflight = 0
            $0.upstreamBroker = next.currentAddress.description
            $0.upstreamAddresses = clientSettings.addresses.map(\.description)
        }
        metrics.addressInUse(next.currentAddress, of: previous + clientSettings.addresses)
        let epoch = state.epoch + 1
        state = ForwardingState(client: next, settings: settings)
        state.epoch = epoch
        next.start()
        logger.info(
            "upstream connection switched to the new settings",
            metadata: ["upstream.broker": "\(next.currentAddress)", "upstream.tls": "\(clientSettings.tls != nil)"])
        return next
    }

    struct ForwardingState {
        var client: any UpstreamLink
        var settings: UpstreamConfiguration
        var window: Int { max(settings.inflight, 1) }
        /// Which client's events count (a reload starts a new one).
        var epoch = 0
        /// New settings waiting for the publishes under way.
        var pending: (MQTTClientConfiguration, UpstreamConfiguration)?
        /// The current connection, while it is up.
        var generation: Int?
        /// Highest seq published on this connection.
        var cursor: Int64 = 0
        var inflight: [Int32: (seq: Int64, sentAt: ContinuousClock.Instant)] = [:]
        var acked: [Int64] = []
        var draining = false
        var retryScheduled = false
    }

    enum Step { case `continue`, stop, switchConnection }

    private func handle(_ signal: Signal, state: inout ForwardingState, signals: AsyncStream<Signal>.Continuation) async -> Step {
        switch signal {
        case .mqtt(let epoch, _) where epoch != state.epoch:
            return .continue
        case .reconfigure:
            break
        case .switchNow(let epoch):
            if epoch == state.epoch, state.pending != nil, !state.draining { return .switchConnection }
            return .continue
        case .mqtt(_, .connected(let generation)):
            state.generation = generation
            state.cursor = 0
            state.inflight.removeAll()
            // Forwarding restarts from the oldest stored event: the removals of events already
            // acknowledged wait in memory for a while (store.removalDelayMs); commit them first so
            // those events are not sent again.
            flushAcks(&state)
            await outbox.waitForQueuedWrites()
            publisher.update { setConnected(true, error: nil, in: &$0) }
            metrics.connectsOK.increment()
            logger.info(
                "upstream link up", metadata: ["outbox.depth": "\(outbox.depth.count)", "upstream.broker": "\(state.client.currentAddress)"])
        case .mqtt(_, .disconnected(let generation, let reason)):
            guard generation == state.generation else { return .continue }
            state.generation = nil
            state.inflight.removeAll()
            flushAcks(&state)
            publisher.update {
                setConnected(false, error: reason, in: &$0)
                $0.upstreamInflight = 0
            }
            if state.draining { return .stop }
            return .continue
        case .mqtt(_, .connectFailed(let reason)):
            metrics.connectsFailed.increment()
            publisher.update { setConnected(false, error: reason, in: &$0) }
            if state.draining { return .stop }
            return .continue
        case .mqtt(_, .subscribed):
            return .continue
        case .mqtt(_, .addressChanged(let from, let to, let reason)):
            // The next connection (to `to`) starts again from the oldest stored event, as any reconnect.
            metrics.failovers.increment()
            metrics.addressInUse(to, of: state.client.configuration.addresses)
            publisher.update {
                $0.upstreamBroker = to.description
                $0.upstreamFailovers += 1
            }
            logger.info(
                "upstream failover from \(from) to \(to): \(reason)",
                metadata: ["upstream.from": "\(from)", "upstream.broker": "\(to)", "reason": "\(reason)"])
            return .continue
        case .mqtt(_, .published(let tickets)):
            let now = ContinuousClock.now
            for ticket in tickets {
                guard ticket.generation == state.generation,
                    let entry = state.inflight.removeValue(forKey: ticket.messageID)
                else { continue }
                state.acked.append(entry.seq)
                metrics.published(latency: entry.sentAt.duration(to: now))
            }
        case .committed:
            break
        case .retry:
            state.retryScheduled = false
        case .shutdown:
            state.draining = true
            logger.info("upstream forwarder draining", metadata: ["upstream.inflight": "\(state.inflight.count)"])
            let grace = state.settings.shutdownGrace
            Task {
                try? await Task.sleep(for: grace)
                signals.yield(.graceExpired)
            }
        case .graceExpired:
            if !state.inflight.isEmpty {
                logger.warning(
                    "shutdown grace expired with publishes unacknowledged; they are sent again after restart",
                    metadata: ["upstream.inflight": "\(state.inflight.count)"])
            }
            flushAcks(&state)
            return .stop
        }
        if state.draining {
            if state.inflight.isEmpty || state.generation == nil {
                flushAcks(&state)
                return .stop
            }
            return .continue
        }
        if state.pending != nil {
            // Switching: nothing new is published; go once the last PUBACK is in (or the link is down).
            return state.inflight.isEmpty || state.generation == nil ? .switchConnection : .continue
        }
        // Refill once half the window is free, so reads and removals go in batches.
        if state.inflight.count <= state.window / 2 {
            flushAcks(&state)
            if await !fill(&state), !state.retryScheduled {
                state.retryScheduled = true
                Task {
                    try? await Task.sleep(for: .seconds(1))
                    signals.yield(.retry)
                }
            }
        }
        publisher.update { $0.upstreamInflight = state.inflight.count }
        return .continue
    }

    private func flushAcks(_ state: inout ForwardingState) {
        guard !state.acked.isEmpty else { return }
        let count = Int64(state.acked.count)
        outbox.remove(state.acked)
        state.acked.removeAll(keepingCapacity: true)
        // One update: a reader never sees the events forwarded and still in flight.
        let inflight = state.inflight.count
        publisher.update {
            $0.eventsForwarded += count
            $0.upstreamInflight = inflight
        }
    }

    /// Publishes stored events until the window is full. Returns `false` when it stopped on an
    /// error that no PUBACK, commit or connection change would follow (so a retry is due).
    @discardableResult
    private func fill(_ state: inout ForwardingState) async -> Bool {
        while let generation = state.generation, state.inflight.count < state.window {
            let batch: [StoredEvent]
            do {
                batch = try await outbox.pending(after: state.cursor, limit: state.window - state.inflight.count)
            } catch {
                logger.error("cannot read the outbox; retrying", metadata: ["error": "\(error)"])
                return false
            }
            if batch.isEmpty { return true }
            for event in batch {
                let topic = event.topic ?? state.settings.topic.render(hubID: state.settings.hubID, deviceID: event.device)
                do {
                    // Only on the connection this state belongs to: one that came up meanwhile
                    // restarts from the oldest event when its .connected signal arrives.
                    let ticket = try state.client.publish(topic: topic, payload: event.payload, qos: 1, retain: false, onGeneration: generation)
                    state.inflight[ticket.messageID] = (event.seq, .now)
                    state.cursor = event.seq
                } catch where error.code == .invalidMessage {
                    logger.error(
                        "event cannot be published upstream; dropping it",
                        metadata: ["device.id": "\(event.device)", "event.id": "\(event.eventID)", "error": "\(error)"])
                    metrics.dropped()
                    outbox.remove([event.seq])
                    state.cursor = event.seq
                } catch where error.code == .notConnected {
                    // The disconnect (or the new connection's .connected) signal follows.
                    return true
                } catch {
                    logger.error(
                        "upstream publish failed; retrying",
                        metadata: ["device.id": "\(event.device)", "event.id": "\(event.eventID)", "error": "\(error)"])
                    return false
                }
            }
        }
        return true
    }
}
