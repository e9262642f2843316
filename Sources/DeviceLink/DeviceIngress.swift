import Foundation
import GatewayCore
import Logging
import Metrics
import Outbox
import Reporting
import ServiceLifecycle
import Synchronization

/// Takes device events and telemetry from the device edge's events connection, validates them,
/// stores them in the outbox, and acknowledges each one (``DeviceReplies``) only after its commit.
///
/// Shutdown order matters for "never loses an acked event": on graceful shutdown the connection
/// stops reading (unread messages stay with the broker, which redelivers them to our persistent
/// session), every message already read is committed and acknowledged, and only then does the
/// ``DeviceLink`` close the connection (it stops after the ingress).
public final class DeviceIngress: Service, Sendable {
    private let inbox: DeviceInbox<DeviceInbound>
    private let link: AsyncStream<LinkChange>
    private let replies: any DeviceReplies
    private let outbox: Outbox
    private var configuration: DeviceIngressConfiguration { settings.withLock { $0 } }
    private let settings: Mutex<DeviceIngressConfiguration>
    private let publisher = StatePublisher(State())
    private let logger: Logger
    private let metrics = IngressMetrics()
    private let commitWindows = CommitWindowHistogram()
    private let rejectLog: RateLimitedLog
    private let activity: DeviceActivity?
    private let isRegistered: @Sendable (DeviceID) -> Bool

    /// - Parameters:
    ///   - activity: where each device's last message is noted (admin API), if anywhere.
    ///   - isRegistered: asked for every event when `configuration.requireRegistration` is on.
    /// - Parameters:
    ///   - inbox: events and telemetry as they arrive (``DeviceLink``: its events connection).
    ///   - link: the state of that connection, for ``state``.
    ///   - replies: where acks go.
    ///   - activity: where each device's last message is noted (admin API), if anywhere.
    ///   - isRegistered: asked for every event when `configuration.requireRegistration` is on.
    public init(
        inbox: DeviceInbox<DeviceInbound>, link: AsyncStream<LinkChange>, replies: any DeviceReplies, outbox: Outbox, configuration: DeviceIngressConfiguration,
        activity: DeviceActivity? = nil,
        isRegistered: @escaping @Sendable (DeviceID) -> Bool = { _ in false }, logger: Logger
    ) {
        self.replies = replies
        self.activity = activity
        self.isRegistered = isRegistered
        self.inbox = inbox
        self.link = link
        self.outbox = outbox
        settings = Mutex(configuration)
        self.logger = logger
        self.rejectLog = RateLimitedLog(logger: logger, interval: .seconds(10))
    }

    /// The ingress's state as values (link up, subscribed, counts, commit windows), for readers.
    public var state: PublishedState<State> { publisher.reader }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.watchConnection() }
            // On shutdown and on cancellation alike (a failed store cancels the group), stop
            // reading first so nothing more is taken from the broker that cannot be stored.
            await withTaskCancellationOrGracefulShutdownHandler {
                await self.consume()
            } onCancelOrGracefulShutdown: {
                self.inbox.pauseReading()
            }
            // Everything read is committed and acked; the DeviceLink closes the connection.
            group.cancelAll()
        }
        logger.info(
            "device ingress stopped",
            metadata: [
                "ingress.stored": "\(commitWindows.count)",
                "ingress.commit_window_p50_ms": "\(commitWindows.percentile(0.5).map { "\($0)" } ?? "-")",
                "ingress.commit_window_p99_ms": "\(commitWindows.percentile(0.99).map { "\($0)" } ?? "-")",
                "ingress.commit_window_max_ms": "\(commitWindows.maxMilliseconds)",
            ])
    }

    private func watchConnection() async {
        for await change in link {
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            publisher.update { state in
                let before = (state.deviceBrokerConnected, state.deviceSubscribed)
                switch change {
                case .connected: state.deviceBrokerConnected = true
                case .subscribed: state.deviceSubscribed = true
                case .down(let reason):
                    state.deviceBrokerConnected = false
                    state.deviceSubscribed = false
                    state.linkLastError = reason
                }
                if before != (state.deviceBrokerConnected, state.deviceSubscribed) || state.linkSinceMs == nil {
                    state.linkSinceMs = now
                }
            }
        }
    }

    /// Reads batches, queues their valid events for commit in arrival order, and acknowledges
    /// them in the same order from one task once each commit is final. At most
    /// `maxOutstandingBatches` wait for their commit; beyond that the reader waits, the message
    /// buffer fills, and the network thread stops reading (backpressure to the broker).
    private func consume() async {
        let (committed, committedSink) = AsyncStream.makeStream(of: Committed.self)
        let window = BatchWindow(limit: configuration.maxOutstandingBatches)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await batch in committed {
                    self.acknowledge(batch.prepared, outcomes: batch.outcomes, committedAt: batch.committedAt)
                    window.release()
                }
            }
            for await batch in inbox {
                let prepared = prepare(batch)
                publish(prepared.immediateAcks)
                guard !prepared.records.isEmpty else { continue }
                await window.acquire()
                outbox.append(prepared.records) { outcomes in
                    committedSink.yield(Committed(prepared: prepared, outcomes: outcomes, committedAt: .now))
                }
            }
            await window.drain()
            committedSink.finish()
            await group.waitForAll()
        }
    }

    struct Committed: Sendable {
        var prepared: Prepared
        var outcomes: [AppendOutcome]
        var committedAt: ContinuousClock.Instant
    }

    struct Prepared: Sendable {
        var records: [OutboxRecord] = []
        var pending: [(device: DeviceID, eventID: String, arrived: ContinuousClock.Instant)] = []
        var immediateAcks: [DeviceAck] = []
    }

    /// Applies new settings (configuration reload): the payload limit and `requireRegistration`
    /// apply from the next batch.
    public func update(_ configuration: DeviceIngressConfiguration) {
        settings.withLock { $0 = configuration }
    }

    /// Validates a batch: valid events become outbox records, invalid ones immediate `rejected` acks.
    func prepare(_ batch: [DeviceInbound]) -> Prepared {
        let configuration = configuration
        var prepared = Prepared()
        var rejects: [String: Int64] = [:]
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        for inbound in batch {
            let message: DeviceMessage
            switch inbound {
            case .message(let received):
                message = received
            case .invalid(.invalidDeviceID(let escaped)):
                rejects["invalid device id", default: 0] += 1
                metrics.rejected(counterName: "invalid_device_id")
                logger.debug("rejected message with an invalid device id", metadata: ["mqtt.topic_level": "\(escaped)"])
                rejectLog.warning(
                    key: "invalid device id", count: 1, "rejected messages with an invalid device id",
                    metadata: ["reason": "invalid device id", "mqtt.topic_level": "\(escaped)"])
                continue
            case .invalid(.notADeviceTopic(let escaped)):
                rejects["invalid topic", default: 0] += 1
                metrics.rejected(counterName: "invalid_topic")
                rejectLog.warning(
                    key: "invalid topic", count: 1, "ignored messages on an unexpected topic",
                    metadata: ["mqtt.topic": "\(escaped)"])
                continue
            }
            let topic = (device: message.device, channel: message.channel)
            if topic.channel == .status {
                presence(message, configuration: configuration, rejects: &rejects, nowMs: now)
                continue
            }
            guard topic.channel == .event || topic.channel == .telemetry else { continue }
            var parsed = DeviceEvent.parse(device: topic.device, payload: message.payload, maxPayloadBytes: configuration.maxPayloadBytes)
            if topic.device.rawValue == configuration.hubID {
                // The hub's own events never come through the broker: whoever publishes under its id is not the hub.
                let eventID = if case .success(let event) = parsed { event.eventID } else { nil as String? }
                parsed = .failure(DeviceEvent.Rejection(reason: .reservedDevice, eventID: eventID, detail: "hub.id is reserved for the hub itself"))
            }
            if configuration.requireRegistration, case .success(let event) = parsed, !isRegistered(topic.device) {
                parsed = .failure(DeviceEvent.Rejection(reason: .unregistered, eventID: event.eventID, detail: "the device has no registration on this hub"))
            }
            if let activity {
                let rejected = if case .failure = parsed { true } else { false }
                activity.record(topic.device, channel: topic.channel == .event ? "event" : "telemetry", rejected: rejected, atMs: now)
            }
            switch parsed {
            case .success(let event):
                let envelope = UpstreamEnvelope.encode(event, hubID: configuration.hubID, receivedAt: now)
                prepared.records.append(OutboxRecord(
                    device: event.device.rawValue, eventID: event.eventID, key: event.device.rawValue,
                    receivedAt: now, payload: envelope))
                prepared.pending.append((event.device, event.eventID, message.receivedAt))
            case .failure(let rejection):
                rejects[rejection.reason.rawValue, default: 0] += 1
                metrics.rejected(counterName: rejection.reason.counterName)
                // Per message at debug; a summary per reason at most every 10 s at warning, so a
                // misbehaving device cannot flood the journal.
                let metadata: Logger.Metadata = [
                    "device.id": "\(topic.device)", "event.id": "\(rejection.eventID ?? "")",
                    "reason": "\(rejection.reason.rawValue)", "detail": "\(rejection.detail)",
                ]
                logger.debug("rejected device event", metadata: metadata)
                rejectLog.warning(key: rejection.reason.rawValue, count: 1, "rejected device event", metadata: metadata)
                prepared.immediateAcks.append(DeviceAck(
                    device: topic.device, eventID: rejection.eventID, status: .rejected, reason: rejection.reason))
            }
        }
        if !rejects.isEmpty {
            outbox.countRejects(rejects)
            let total = rejects.values.reduce(0, +)
            publisher.update { state in
                state.eventsRejected += total
                state.rejectedByReason.merge(rejects, uniquingKeysWith: +)
            }
        }
        return prepared
    }

    /// A presence announcement (`{"online": true|false}`, CONTRACTS.md §5): noted, never acked.
    /// Anything else on the topic is counted (`invalid status`) and ignored; so is `hub.id`.
    private func presence(_ message: DeviceMessage, configuration: DeviceIngressConfiguration, rejects: inout [String: Int64], nowMs: Int64) {
        struct Status: Decodable { var online: Bool }
        let online: Bool? =
            if message.payload.count <= 256, message.device.rawValue != configuration.hubID,
                let status = try? JSONDecoder().decode(Status.self, from: Data(message.payload))
            { status.online } else { nil }
        guard let online else {
            rejects["invalid status", default: 0] += 1
            metrics.rejected(counterName: "invalid_status")
            rejectLog.warning(
                key: "invalid status", count: 1, "ignored a presence message that is not {\"online\": true|false}",
                metadata: ["device.id": "\(message.device)", "reason": "invalid status"])
            return
        }
        activity?.announce(message.device, online: online, atMs: nowMs)
    }

    private func acknowledge(_ prepared: Prepared, outcomes: [AppendOutcome], committedAt committed: ContinuousClock.Instant) {
        var acks: [DeviceAck] = []
        acks.reserveCapacity(outcomes.count)
        var stored: Int64 = 0
        var duplicates: Int64 = 0
        var rejected: Int64 = 0
        var window = Duration.zero
        for (index, outcome) in outcomes.enumerated() {
            let entry = prepared.pending[index]
            switch outcome {
            case .stored:
                stored += 1
                let eventWindow = entry.arrived.duration(to: committed)
                commitWindows.record(eventWindow)
                window = max(window, eventWindow)
                acks.append(DeviceAck(device: entry.device, eventID: entry.eventID, status: .stored))
            case .duplicate:
                duplicates += 1
                acks.append(DeviceAck(device: entry.device, eventID: entry.eventID, status: .duplicate))
            case .rejectedStoreFull:
                rejected += 1
                metrics.rejected(counterName: RejectReason.storeFull.counterName)
                acks.append(DeviceAck(device: entry.device, eventID: entry.eventID, status: .rejected, reason: .storeFull))
            }
        }
        let windowMs = Double(window.components.seconds) * 1000 + Double(window.components.attoseconds) / 1e15
        metrics.record(stored: stored, duplicates: duplicates, commitWindow: window)
        publisher.update { state in
            state.eventsStored += stored
            state.eventsDuplicate += duplicates
            state.eventsRejected += rejected
            if rejected > 0 { state.rejectedByReason[RejectReason.storeFull.rawValue, default: 0] += rejected }
            state.acknowledgedBatches += 1
            state.lastCommitWindowMs = windowMs
        }
        if rejected > 0 {
            rejectLog.warning(key: "store full", count: rejected, "outbox full: events rejected", metadata: ["reason": "store full"])
        }
        publish(acks)
    }

    private func publish(_ acks: [DeviceAck]) {
        for ack in acks {
            do {
                try replies.send(ack)
            } catch {
                // The device did not hear back; it resends and gets `duplicate`, which tells it the same.
                metrics.ackFailed()
                logger.debug(
                    "could not publish ack", metadata: ["device.id": "\(ack.device)", "event.id": "\(ack.eventID ?? "")", "error": "\(error)"])
            }
        }
    }
}
