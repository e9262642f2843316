import Foundation
import Logging

/// A Swift face over one libmosquitto connection, with its own network thread.
///
/// - Connects and reconnects forever with exponential backoff and full jitter; a connection
///   without CONNACK within `connectTimeoutSeconds` is abandoned (a broker that accepts TCP and
///   never answers does not hang the client).
/// - With several `addresses` (the nodes of a cluster), each attempt that ends moves to the next
///   address (``ConnectPlan``), reported as ``MQTTEvent/addressChanged(from:to:reason:)``.
/// - Subscribes to `configuration.subscriptions` (QoS 1) after every connect.
/// - Received messages arrive through ``messages`` (bounded, with backpressure); connection
///   changes and PUBACKs through ``events``.
/// - ``publish(topic:payload:qos:retain:)`` may be called from any thread.
///
/// ```swift
/// let client = MQTTClient(configuration: config, logger: logger)
/// client.start()
/// for await batch in client.messages { … }
/// ```
///
/// The C handle is created per connection attempt, so libmosquitto never replays messages of a
/// dead connection on its own: callers decide what to resend.
public final class MQTTClient: MosquittoDelegate, @unchecked Sendable {
    public let configuration: MQTTClientConfiguration
    /// Device messages, in arrival order, in batches of what was available.
    public let messages: MessageBuffer
    /// Connection changes and (when `reportsPublishAcks`) PUBACKs. One consumer.
    public let events: AsyncStream<MQTTEvent>

    private let eventsContinuation: AsyncStream<MQTTEvent>.Continuation
    private let logger: Logger
    private let startJitterMs: Double

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var handle: MosquittoHandle?
    private var generation = 0
    private var connected = false
    private var started = false
    private var stopRequested = false
    private var readingPaused = false
    private var threadFinished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    private var address: MQTTBrokerAddress

    // Network thread only.
    private var connackReceived = false
    private var pendingSubscriptions: Set<Int32> = []
    private var optionalSubscriptionIDs: [Int32: String] = [:]
    private var lostReason: String?
    /// PUBACKs read in the current pass of the network loop, reported together after it (network thread only).
    private var acknowledged: [PublishTicket] = []
    /// Messages read in the current pass of the network loop, handed on together after it, or as soon as
    /// they hold ``receivedFlushBytes`` of payload (network thread only; a pass reads at most 256 packets).
    private var received: [MQTTMessage] = []
    private var receivedBytes = 0
    private static let receivedFlushBytes = 256 * 1024
    private var failureLog: ConnectFailureLog
    private var plan: ConnectPlan
    private var connackAt: ContinuousClock.Instant?

    public init(configuration: MQTTClientConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.messages = MessageBuffer(
            capacity: configuration.messageBufferCapacity, byteCapacity: configuration.messageBufferBytes)
        var generator = SystemRandomNumberGenerator()
        let plan = ConnectPlan(
            addresses: configuration.addresses,
            startIndex: ConnectPlan.startIndex(count: configuration.addresses.count, order: configuration.addressOrder, using: &generator),
            backoff: ReconnectBackoff(
                baseMilliseconds: configuration.reconnectBaseMs, capMilliseconds: configuration.reconnectCapMs,
                quickAttempts: configuration.quickRetries),
            minConnected: .milliseconds(Int64(configuration.minConnectedSeconds * 1000)))
        self.plan = plan
        self.address = plan.current
        self.failureLog = ConnectFailureLog(broker: plan.current.description)
        self.startJitterMs = ConnectPlan.startDelayMilliseconds(
            jitterSeconds: configuration.startJitterSeconds, unit: Double.random(in: 0...1))
        (events, eventsContinuation) = AsyncStream.makeStream(of: MQTTEvent.self, bufferingPolicy: .unbounded)
    }

    /// Starts the network thread. Call once.
    public func start() {
        condition.lock()
        precondition(!started, "MQTTClient.start() called twice")
        started = true
        // Stopped before it started (a service stopped before its run() got to start it): no
        // connection, and the streams end so their readers do.
        let stoppedAlready = threadFinished
        condition.unlock()
        if stoppedAlready {
            messages.finish()
            eventsContinuation.finish()
            return
        }
        let thread = Thread { [self] in self.networkLoop() }
        thread.name = "mqtt-\(configuration.clientID)"
        thread.start()
    }

    /// The broker address in use: of the connection that is up, or of the attempt under way or next.
    public var currentAddress: MQTTBrokerAddress {
        condition.lock()
        defer { condition.unlock() }
        return address
    }

    /// Whether a connection with CONNACK is up right now.
    public var isConnected: Bool {
        condition.lock()
        defer { condition.unlock() }
        return connected
    }

    /// Publishes on the current connection. QoS 1 messages are acknowledged by
    /// ``MQTTEvent/published(_:)`` with the returned ticket (when `reportsPublishAcks`).
    ///
    /// - Parameter generation: publish only on this connection (from ``MQTTEvent/connected(generation:)``);
    ///   on any other the call fails with `.notConnected`. A caller that restarts its work on each
    ///   connection uses it so nothing goes out on a connection it has not seen yet.
    @discardableResult
    public func publish(
        topic: String, payload: [UInt8], qos: Int32 = 1, retain: Bool = false, onGeneration generation: Int? = nil
    ) throws(MQTTError) -> PublishTicket {
        // Take the handle under the lock, call libmosquitto outside it: the callbacks on the
        // network thread take the same lock. Holding the reference keeps the handle alive even
        // if the connection ends meanwhile (libmosquitto then answers "no connection").
        condition.lock()
        let current = connected ? handle : nil
        let currentGeneration = self.generation
        let address = self.address
        condition.unlock()
        guard let current, generation == nil || generation == currentGeneration else {
            throw MQTTError(.notConnected, "not connected to \(address)")
        }
        let (rc, mid) = current.publish(topic: topic, payload: payload, qos: qos, retain: retain)
        switch rc {
        case MosquittoHandle.success:
            return PublishTicket(generation: currentGeneration, messageID: mid)
        case MosquittoHandle.noConnection:
            throw MQTTError(.notConnected, "not connected to \(address)")
        case MosquittoHandle.payloadTooLarge, MosquittoHandle.invalid:
            throw MQTTError(.invalidMessage, "cannot publish to \(topic): \(MosquittoHandle.describe(rc))")
        default:
            throw MQTTError(.library(rc), "publish to \(topic) failed: \(MosquittoHandle.describe(rc))")
        }
    }

    /// Stops taking new messages from the broker (they stay queued there, unacknowledged) while
    /// writes, keepalive and publishes go on. ``messages`` ends once the buffer is drained.
    public func pauseReading() {
        condition.lock()
        readingPaused = true
        condition.broadcast()
        condition.unlock()
    }

    /// Disconnects cleanly (after writing what is queued) and ends the network thread.
    public func stop() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if threadFinished || !started {
                threadFinished = true
                condition.unlock()
                continuation.resume()
                return
            }
            stopRequested = true
            finishWaiters.append(continuation)
            condition.broadcast()
            condition.unlock()
        }
    }

    // MARK: - Network thread

    private func networkLoop() {
        if startJitterMs > 0 {
            logger.info(
                "waiting before the first connect (startJitterSeconds)",
                metadata: ["mqtt.delay_ms": "\(Int(startJitterMs))", "mqtt.broker": "\(plan.current)"])
            sleep(milliseconds: startJitterMs)
        }
        while !isStopRequested {
            if isReadingPaused {
                // Not connected and told not to read: nothing more can arrive.
                messages.finish()
                sleep(milliseconds: 1000)
                continue
            }
            let (connectedFor, reason) = runOneConnection()
            if isStopRequested { break }
            let step = plan.ended(connectedFor: connectedFor, unit: Double.random(in: 0...1))
            if step.changesAddress {
                condition.lock()
                address = step.to
                condition.unlock()
                logger.debug(
                    "trying the next broker address",
                    metadata: ["mqtt.from": "\(step.from)", "mqtt.broker": "\(step.to)", "reason": "\(reason)"])
                eventsContinuation.yield(.addressChanged(from: step.from, to: step.to, reason: reason))
            }
            logger.debug(
                "reconnecting after backoff",
                metadata: ["mqtt.delay_ms": "\(Int(step.delayMilliseconds))", "mqtt.attempt": "\(step.attempt)", "mqtt.broker": "\(step.to)"])
            sleep(milliseconds: step.delayMilliseconds)
        }
        messages.finish()
        eventsContinuation.finish()
        condition.lock()
        threadFinished = true
        let waiters = finishWaiters
        finishWaiters.removeAll()
        condition.unlock()
        for waiter in waiters { waiter.resume() }
    }

    private var isStopRequested: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopRequested
    }

    private var isReadingPaused: Bool {
        condition.lock()
        defer { condition.unlock() }
        return readingPaused
    }

    private func sleep(milliseconds: Double) {
        let deadline = Date(timeIntervalSinceNow: milliseconds / 1000)
        condition.lock()
        let pausedAtStart = readingPaused
        while !stopRequested, readingPaused == pausedAtStart, Date() < deadline {
            _ = condition.wait(until: deadline)
        }
        condition.unlock()
    }

    /// One connection from connect to loss, to the plan's current address. Returns how long it was
    /// up (nil: no CONNACK) and why it ended.
    private func runOneConnection() -> (connectedFor: Duration?, reason: String) {
        let address = plan.current
        let newHandle: MosquittoHandle
        do {
            newHandle = try MosquittoHandle.make(configuration: configuration, address: address, delegate: self)
        } catch {
            logger.error("cannot set up MQTT client", metadata: ["error": "\(error)"])
            eventsContinuation.yield(.connectFailed(reason: error.message))
            return (nil, error.message)
        }
        connackReceived = false
        connackAt = nil
        pendingSubscriptions = []
        optionalSubscriptionIDs = [:]
        lostReason = nil
        condition.lock()
        generation += 1
        let currentGeneration = generation
        handle = newHandle
        condition.unlock()

        defer {
            condition.lock()
            handle = nil
            connected = false
            condition.unlock()
        }

        let rc = newHandle.connectAsync(to: address, keepAlive: configuration.keepAliveSeconds)
        guard rc == MosquittoHandle.success else {
            let reason = MosquittoHandle.describe(rc)
            connectFailed(reason, address: address)
            return (nil, reason)
        }
        let connectStarted = ContinuousClock.now
        var disconnectSentAt: ContinuousClock.Instant?
        while true {
            condition.lock()
            let stop = stopRequested
            let paused = readingPaused
            condition.unlock()
            if stop {
                guard connackReceived else { break }
                if paused, !newHandle.usesTLS {
                    newHandle.closeWithoutReading(deadline: .now + .seconds(5))
                    lostReason = "closed by the gateway"
                    break
                }
                if let sentAt = disconnectSentAt {
                    // DISCONNECT could not be written (stuck socket): give up on a clean goodbye.
                    if sentAt.duration(to: .now) > .seconds(5) { break }
                } else {
                    _ = newHandle.disconnect()
                    disconnectSentAt = .now
                }
            }
            if paused {
                // Everything read so far is in the buffer; the consumer drains it and sees the end.
                messages.finish()
                guard connackReceived else { break }
            }
            let loopRC = paused && connackReceived
                ? newHandle.loopWithoutReading(timeoutMs: 20)
                : newHandle.loop(timeoutMs: 200)
            handOnReceived()
            reportAcknowledged()
            if loopRC != MosquittoHandle.success {
                if lostReason == nil { lostReason = MosquittoHandle.describe(loopRC) }
                break
            }
            if !connackReceived, connectStarted.duration(to: .now) > .seconds(configuration.connectTimeoutSeconds) {
                lostReason = "no CONNACK within \(configuration.connectTimeoutSeconds) s"
                break
            }
        }
        if connackReceived {
            let reason = lostReason ?? "disconnected"
            if !isStopRequested {
                logger.warning("MQTT connection lost", metadata: ["mqtt.broker": "\(address)", "reason": "\(reason)"])
            }
            eventsContinuation.yield(.disconnected(generation: currentGeneration, reason: reason))
            return ((connackAt ?? .now).duration(to: .now), reason)
        }
        let reason = lostReason ?? "connection failed"
        connectFailed(reason, address: address)
        return (nil, reason)
    }

    /// A connect that failed: logged as ``ConnectFailureLog`` says (one error per streak, then
    /// reminders), and reported to the consumer.
    private func connectFailed(_ reason: String, address: MQTTBrokerAddress) {
        let metadata: Logger.Metadata = [
            "mqtt.broker": "\(address)", "mqtt.client_id": "\(configuration.clientID)", "error": "\(reason)",
        ]
        if let (level, message) = failureLog.failed(reason: reason) {
            logger.log(level: level, "\(message)", metadata: metadata)
        } else {
            logger.debug("MQTT connect failed", metadata: metadata)
        }
        eventsContinuation.yield(.connectFailed(reason: reason))
    }

    // MARK: - Callbacks (network thread)

    func mosquittoDidConnect(resultCode: Int32) {
        guard resultCode == 0 else {
            lostReason = "broker refused: \(MosquittoHandle.connackDescription(resultCode))"
            condition.lock()
            let handle = self.handle
            condition.unlock()
            _ = handle?.disconnect()
            return
        }
        connackReceived = true
        connackAt = .now
        condition.lock()
        connected = true
        let handle = self.handle
        let currentGeneration = generation
        condition.unlock()
        if let summary = failureLog.connected() {
            logger.notice("\(summary)", metadata: ["mqtt.broker": "\(plan.current)"])
        }
        logger.info("MQTT connected", metadata: ["mqtt.broker": "\(plan.current)", "mqtt.client_id": "\(configuration.clientID)"])
        eventsContinuation.yield(.connected(generation: currentGeneration))
        guard let handle else { return }
        if configuration.subscriptions.isEmpty, configuration.optionalSubscriptions.isEmpty {
            eventsContinuation.yield(.subscribed(generation: currentGeneration))
            return
        }
        for topic in configuration.optionalSubscriptions {
            let (rc, mid) = handle.subscribe(topic, qos: 1)
            if rc == MosquittoHandle.success {
                pendingSubscriptions.insert(mid)
                optionalSubscriptionIDs[mid] = topic
            } else {
                logger.warning("MQTT subscribe failed; going on without this topic", metadata: ["mqtt.topic": "\(topic)", "error": "\(MosquittoHandle.describe(rc))"])
            }
        }
        for topic in configuration.subscriptions {
            let (rc, mid) = handle.subscribe(topic, qos: 1)
            guard rc == MosquittoHandle.success else {
                // Without every subscription the gateway would look healthy and miss messages:
                // drop the connection and try again after the backoff.
                logger.error("MQTT subscribe failed; reconnecting", metadata: ["mqtt.topic": "\(topic)", "error": "\(MosquittoHandle.describe(rc))"])
                lostReason = "subscribe failed"
                _ = handle.disconnect()
                return
            }
            pendingSubscriptions.insert(mid)
        }
    }

    func mosquittoDidDisconnect(resultCode: Int32) {
        condition.lock()
        connected = false
        condition.unlock()
        if resultCode != 0, lostReason == nil {
            lostReason = MosquittoHandle.describe(resultCode)
        }
    }

    func mosquittoDidSubscribe(messageID: Int32, grantedQoS: [Int32]) {
        if let optional = optionalSubscriptionIDs.removeValue(forKey: messageID), grantedQoS.contains(where: { $0 > 2 }) {
            logger.warning(
                "MQTT broker refused an optional subscription (check its ACL); going on without it",
                metadata: ["mqtt.topic": "\(optional)", "mqtt.granted": "\(grantedQoS)"])
        } else if grantedQoS.contains(where: { $0 > 2 }) {
            logger.error(
                "MQTT broker refused a subscription (check its ACL); reconnecting",
                metadata: ["mqtt.granted": "\(grantedQoS)", "mqtt.topics": "\(configuration.subscriptions.joined(separator: ","))"])
            lostReason = "subscription refused"
            condition.lock()
            let handle = self.handle
            condition.unlock()
            _ = handle?.disconnect()
            return
        }
        guard pendingSubscriptions.remove(messageID) != nil else { return }
        if pendingSubscriptions.isEmpty {
            condition.lock()
            let currentGeneration = generation
            condition.unlock()
            logger.info("MQTT subscribed", metadata: ["mqtt.topics": "\(configuration.subscriptions.joined(separator: ","))"])
            eventsContinuation.yield(.subscribed(generation: currentGeneration))
        }
    }

    func mosquittoDidPublish(messageID: Int32) {
        guard configuration.reportsPublishAcks else { return }
        condition.lock()
        let currentGeneration = generation
        condition.unlock()
        acknowledged.append(PublishTicket(generation: currentGeneration, messageID: messageID))
    }

    /// Reports the PUBACKs of one loop pass as one event: under load a pass reads dozens, and one
    /// event each cost the consumer a hop through the stream (and often a wake-up) per publish.
    private func reportAcknowledged() {
        guard !acknowledged.isEmpty else { return }
        eventsContinuation.yield(.published(acknowledged))
        acknowledged.removeAll(keepingCapacity: true)
    }

    func mosquittoDidReceive(_ message: MQTTMessage) {
        received.append(message)
        receivedBytes += message.payload.count
        // Large messages go on at once: what waits here is not in the buffer's byte budget.
        if receivedBytes >= Self.receivedFlushBytes { handOnReceived() }
    }

    /// Hands what the loop read to ``messages``: one lock and at most one consumer wake-up for the
    /// lot, not one each. Blocks while the buffer is full (the backpressure).
    private func handOnReceived() {
        guard !received.isEmpty else { return }
        messages.push(contentsOf: received)
        received.removeAll(keepingCapacity: true)
        receivedBytes = 0
    }
}
