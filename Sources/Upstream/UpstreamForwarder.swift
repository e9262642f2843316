import GatewayCore
import Logging
import MQTT
import Metrics
import Outbox
import ServiceLifecycle

/// Drains the outbox to the upstream broker (CONTRACTS.md §2).
///
/// Events are published with QoS 1 in sequence order with at most `inflight` awaiting PUBACK, and
/// removed from the outbox on PUBACK. Every (re)connect starts again from the oldest stored event,
/// so per-device order holds across reconnects and restarts; an event whose PUBACK was lost is
/// sent again with the same `eventId` (at least once). When there is nothing to send it waits for
/// the outbox's next commit and does not poll.
public final class UpstreamForwarder: Service, Sendable {
    private let client: MQTTClient
    private let outbox: Outbox
    private let configuration: UpstreamConfiguration
    private let health: GatewayHealth
    private let logger: Logger
    private let metrics = ForwarderMetrics()

    public init(
        client: MQTTClient, outbox: Outbox, configuration: UpstreamConfiguration,
        health: GatewayHealth, logger: Logger
    ) {
        precondition(client.configuration.reportsPublishAcks, "the upstream client must report PUBACKs")
        self.client = client
        self.outbox = outbox
        self.configuration = configuration
        self.health = health
        self.logger = logger
    }

    enum Signal: Sendable {
        case mqtt(MQTTEvent)
        case committed
        case shutdown
        case graceExpired
        /// Try reading and publishing again after an error that no other signal would follow.
        case retry
    }

    public func run() async throws {
        let (signals, continuation) = AsyncStream.makeStream(of: Signal.self)
        client.start()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [client] in
                for await event in client.events { continuation.yield(.mqtt(event)) }
            }
            group.addTask { [outbox] in
                for await _ in outbox.committedSequences { continuation.yield(.committed) }
            }
            await withGracefulShutdownHandler {
                var state = ForwardingState(window: max(configuration.inflight, 1))
                for await signal in signals {
                    if await handle(signal, state: &state, signals: continuation) == .stop { break }
                }
            } onGracefulShutdown: {
                continuation.yield(.shutdown)
            }
            continuation.finish()
            await client.stop()
            group.cancelAll()
        }
        logger.info("upstream forwarder stopped")
    }

    struct ForwardingState {
        let window: Int
        /// The current connection, while it is up.
        var generation: Int?
        /// Highest seq published on this connection.
        var cursor: Int64 = 0
        var inflight: [Int32: (seq: Int64, sentAt: ContinuousClock.Instant)] = [:]
        var acked: [Int64] = []
        var draining = false
        var retryScheduled = false
    }

    enum Step { case `continue`, stop }

    private func handle(_ signal: Signal, state: inout ForwardingState, signals: AsyncStream<Signal>.Continuation) async -> Step {
        switch signal {
        case .mqtt(.connected(let generation)):
            state.generation = generation
            state.cursor = 0
            state.inflight.removeAll()
            health.update {
                $0.upstreamConnected = true
                $0.upstreamLastError = nil
            }
            logger.info("upstream link up", metadata: ["outbox.depth": "\(outbox.depth.count)"])
        case .mqtt(.disconnected(let generation, let reason)):
            guard generation == state.generation else { return .continue }
            state.generation = nil
            state.inflight.removeAll()
            flushAcks(&state)
            health.update {
                $0.upstreamConnected = false
                $0.upstreamLastError = reason
                $0.upstreamInflight = 0
            }
            if state.draining { return .stop }
            return .continue
        case .mqtt(.connectFailed(let reason)):
            health.update {
                $0.upstreamConnected = false
                $0.upstreamLastError = reason
            }
            if state.draining { return .stop }
            return .continue
        case .mqtt(.subscribed):
            return .continue
        case .mqtt(.published(let ticket)):
            guard ticket.generation == state.generation,
                let entry = state.inflight.removeValue(forKey: ticket.messageID)
            else { return .continue }
            state.acked.append(entry.seq)
            metrics.published(latency: entry.sentAt.duration(to: .now))
        case .committed:
            break
        case .retry:
            state.retryScheduled = false
        case .shutdown:
            state.draining = true
            logger.info("upstream forwarder draining", metadata: ["upstream.inflight": "\(state.inflight.count)"])
            let grace = configuration.shutdownGrace
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
        health.update { $0.upstreamInflight = state.inflight.count }
        return .continue
    }

    private func flushAcks(_ state: inout ForwardingState) {
        guard !state.acked.isEmpty else { return }
        let count = Int64(state.acked.count)
        outbox.remove(state.acked)
        state.acked.removeAll(keepingCapacity: true)
        health.update { $0.eventsForwarded += count }
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
                let topic = configuration.topic.render(hubID: configuration.hubID, deviceID: event.device)
                do {
                    // Only on the connection this state belongs to: one that came up meanwhile
                    // restarts from the oldest event when its .connected signal arrives.
                    let ticket = try client.publish(topic: topic, payload: event.payload, qos: 1, onGeneration: generation)
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
