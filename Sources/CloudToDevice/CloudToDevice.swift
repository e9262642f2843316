import Commands
import DeviceLink
import Foundation
import GatewayCore
import Logging
import Metrics
import Outbox
import Reporting
import ServiceLifecycle
import Shadow
import Synchronization

/// What the cloud asks of devices, carried both ways (CONTRACTS.md §5–§7): cloud commands to
/// devices and their results back, and (with the shadow) desired state down and reported state up.
///
/// One loop takes every input in turn — a message from the cloud, a device's answer, a device
/// coming online, the operator's request, the clock — so each change is committed to its store and
/// its upstream message appended to the outbox before the next input is looked at: status
/// messages of one device reach the outbox, and so the cloud, in the order of the changes.
/// Producers wait until their input is handled, so a flood from the cloud or from devices slows
/// their connections instead of piling up in memory.
///
/// Upstream messages go through the outbox (so they survive outages and restarts) with their own
/// topic and an event id no device can send (it starts with U+0001): a state change's id names the
/// command, its receipt and the status, so appending it again after a crash is a duplicate; an
/// answer to a repeat or a refusal gets a fresh id.
public final class CloudToDevice: Service, Sendable {
    /// The hub's view of pending commands per device, for the status page (values, no waiting).
    public struct State: Sendable, Equatable {
        public var pending: [String: PendingCommands] = [:]
        public var connected = false
    }

    enum Input: Sendable {
        case cloud(topic: [UInt8], payload: [UInt8])
        case device(DeviceMessage)
        case online(DeviceID)
        case linkUp
        case tick
        case send(device: DeviceID, payload: [UInt8], reply: @Sendable (OperatorAnswer) -> Void)
        case cancel(device: DeviceID, commandID: String, reply: @Sendable (OperatorAnswer) -> Void)
    }

    /// What the operator's request came to.
    public enum OperatorAnswer: Sendable {
        /// Stored now, answered `queued` upstream.
        case queued(CommandRecord)
        /// The device has a command with this id already: as it stands.
        case existing(CommandRecord)
        /// Cancelled: `rejected`, message `cancelled`.
        case cancelled(CommandRecord)
        /// Refused by the hub with the contract's reason.
        case rejected(reason: String, detail: String?)
        /// A cancel that cannot be done.
        case refused(notFound: Bool, message: String)
        case failed(String)
    }

    let configuration: CloudToDeviceConfiguration
    let commands: CommandQueue?
    let shadows: ShadowStore?
    let outbox: Outbox
    let downlink: any DeviceDownlink
    let inbox: DeviceInbox<DeviceInbound>?
    let link: AsyncStream<LinkChange>?
    let activity: DeviceActivity
    let isKnown: @Sendable (DeviceID) -> Bool
    let logger: Logger
    let commandTopic: CloudTopic
    let shadowTopic: CloudTopic
    private let inputs = AsyncStream.makeStream(of: (Input, @Sendable () -> Void).self)
    private let publisher = StatePublisher(State())
    /// When the loop should next look at the clock (ms since the epoch); `.max`: nothing waits.
    private let wakeAt = Atomic<Int64>(.max)
    /// When finished commands past `commands.retentionSeconds` are next removed (every 10 minutes).
    private let purgeAt = Atomic<Int64>(0)
    /// A message the outbox refused (full) waits to be appended again: look again in 5 s.
    private let reportsOwed = Atomic<Bool>(false)
    static let purgeIntervalMs: Int64 = 600_000
    static let retryIntervalMs: Int64 = 5_000
    private let invalidTopics = Counter(label: "gateway.cloud.messages.rejected.total", dimensions: [("reason", "invalid_topic")])

    /// - Parameters:
    ///   - isKnown: whether a device may get commands (with registration on: registered).
    public init(
        configuration: CloudToDeviceConfiguration, commands: CommandQueue?, shadows: ShadowStore? = nil, outbox: Outbox,
        downlink: any DeviceDownlink,
        inbox: DeviceInbox<DeviceInbound>?, link: AsyncStream<LinkChange>?, activity: DeviceActivity,
        isKnown: @escaping @Sendable (DeviceID) -> Bool = { _ in true }, logger: Logger
    ) {
        self.configuration = configuration
        self.commands = commands
        self.shadows = shadows
        self.outbox = outbox
        self.downlink = downlink
        self.inbox = inbox
        self.link = link
        self.activity = activity
        self.isKnown = isKnown
        self.logger = logger
        commandTopic = CloudTopic(template: configuration.commands.topic, hubID: configuration.hubID)
        shadowTopic = CloudTopic(template: configuration.shadowTopic, hubID: configuration.hubID)
    }

    /// Pending commands per device and the link, as values.
    public var state: PublishedState<State> { publisher.reader }

    /// The upstream subscriptions this part needs (the forwarder's link subscribes them).
    public static func subscriptions(_ configuration: CloudToDeviceConfiguration) -> [String] {
        var filters: [String] = []
        if configuration.commands.enabled {
            filters.append(CloudTopic(template: configuration.commands.topic, hubID: configuration.hubID).filter())
        }
        if configuration.shadow.enabled {
            filters.append(CloudTopic(template: configuration.shadowTopic, hubID: configuration.hubID).filter(leaf: "/update"))
        }
        return filters
    }

    // MARK: - Inputs

    /// Takes what the cloud sent (the upstream link's subscriptions); returns once it is handled.
    public func takeCloud(_ messages: [(topic: [UInt8], payload: [UInt8])]) async {
        for message in messages {
            await submit(.cloud(topic: message.topic, payload: message.payload))
        }
    }

    /// A command from the hub's operator (`POST /api/commands`), the same way as one from the cloud.
    public func operatorSend(device: DeviceID, payload: [UInt8]) async -> OperatorAnswer {
        await withCheckedContinuation { continuation in
            let once = Once(continuation)
            let yielded = inputs.continuation.yield((.send(device: device, payload: payload, reply: once.resume), {}))
            if case .terminated = yielded { once.resume(.failed("the gateway is stopping")) }
        }
    }

    /// Cancels a command not yet sent to its device (`DELETE /api/commands/{device}/{id}`): it becomes
    /// `rejected` with message `cancelled`.
    public func operatorCancel(device: DeviceID, commandID: String) async -> OperatorAnswer {
        await withCheckedContinuation { continuation in
            let once = Once(continuation)
            let yielded = inputs.continuation.yield((.cancel(device: device, commandID: commandID, reply: once.resume), {}))
            if case .terminated = yielded { once.resume(.failed("the gateway is stopping")) }
        }
    }

    /// New limits of the commands (a configuration reload: `commands.max…`, `inflightPerDevice`,
    /// `ackTimeoutSeconds`, `retentionSeconds`); the topic and the store stay until a restart.
    public func reload(commands settings: CommandsConfiguration) async {
        await commands?.reload(settings)
    }

    /// The hub's copy of a device's shadow, encoded; nil when shadows are off.
    public func shadowDocument(_ device: DeviceID) -> [UInt8]? {
        shadows?.encodedDocument(device)
    }

    /// The commands of one device (or all): unfinished ones and recent results.
    public func list(device: DeviceID?) async throws -> [CommandRecord] {
        guard let commands else { return [] }
        return try await commands.list(device: device)
    }

    private func submit(_ input: Input) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if case .terminated = inputs.continuation.yield((input, { continuation.resume() })) {
                continuation.resume()
            }
        }
    }

    // MARK: - The loop

    public func run() async throws {
        if let commands {
            for record in (try? await commands.unreported()) ?? [] { await report(record, commands: commands) }
        }
        if let shadows {
            for document in shadows.unreported() { await report(document, shadows: shadows) }
        }
        await publishPending()
        await withTaskGroup(of: Void.self) { group in
            if let inbox {
                group.addTask {
                    for await batch in inbox {
                        for item in batch {
                            switch item {
                            case .message(let message): await self.submit(.device(message))
                            case .invalid: break  // counted by the inbox's reader: topics outside the filters cannot arrive
                            }
                        }
                    }
                }
            }
            if let link {
                group.addTask {
                    for await change in link {
                        let connected = if case .down = change { false } else { true }
                        self.publisher.update { $0.connected = connected }
                        if change == .subscribed { await self.submit(.linkUp) }
                    }
                }
            }
            group.addTask {
                for await device in self.activity.arrivals { await self.submit(.online(device)) }
            }
            group.addTask { await self.clock() }
            await withGracefulShutdownHandler {
                for await (input, done) in inputs.stream {
                    await handle(input)
                    done()
                    await scheduleWake()
                }
            } onGracefulShutdown: {
                self.inputs.continuation.finish()
            }
            inbox?.pauseReading()
            group.cancelAll()
        }
        await commands?.close()
        await shadows?.close()
        logger.info("cloud commands and shadows stopped")
    }

    /// Ticks when the earliest deadline (an expiry, a re-send) has come; looks at least once a second.
    private func clock() async {
        while !Task.isCancelled {
            let now = Self.nowMs()
            let wake = wakeAt.load(ordering: .relaxed)
            if wake <= now {
                wakeAt.store(.max, ordering: .relaxed)
                await submit(.tick)
                continue
            }
            let delay = min(max(wake - now, 10), 1000)
            try? await Task.sleep(for: .milliseconds(delay))
        }
    }

    /// The next look at the clock: the first expiry or re-send, the next purge, a retry of what
    /// the outbox refused.
    private func scheduleWake() async {
        let now = Self.nowMs()
        var wake = commands == nil ? Int64.max : purgeAt.load(ordering: .relaxed)
        if let commands, let due = await commands.nextWake(nowMs: now, isOnline: isOnline) { wake = min(wake, due) }
        if reportsOwed.load(ordering: .relaxed) { wake = min(wake, now + Self.retryIntervalMs) }
        wakeAt.store(wake, ordering: .relaxed)
    }

    private func handle(_ input: Input) async {
        let now = Self.nowMs()
        switch input {
        case .cloud(let topic, let payload):
            if let commands, configuration.commands.enabled {
                switch commandTopic.device(in: topic) {
                case .success(let device):
                    await receive(device: device, payload: payload, commands: commands, now: now, reply: nil)
                    return
                case .failure(.invalidDeviceID(let escaped)):
                    invalidTopics.increment()
                    logger.warning("a cloud command for an invalid device id is ignored", metadata: ["topic.device": "\(escaped)"])
                    return
                case .failure(.otherTopic):
                    break
                }
            }
            if let shadows, configuration.shadow.enabled {
                switch shadowTopic.device(in: topic, leaf: "/update") {
                case .success(let device):
                    await update(device: device, payload: payload, shadows: shadows, now: now)
                    return
                case .failure(.invalidDeviceID(let escaped)):
                    invalidTopics.increment()
                    logger.warning("a shadow update for an invalid device id is ignored", metadata: ["topic.device": "\(escaped)"])
                    return
                case .failure(.otherTopic):
                    break
                }
            }
            invalidTopics.increment()
            logger.debug("ignored a cloud message on an unexpected topic", metadata: ["topic": "\(DeviceID.escapedForLog(topic))"])
        case .device(let message) where message.channel == .shadowReport || message.channel == .shadowGet:
            guard let shadows else { return }
            await shadowMessage(message, shadows: shadows, now: now)
        case .device(let message):
            guard let commands, message.channel == .commandResult else { return }
            do {
                if case .changed(let record) = try await commands.result(device: message.device, payload: message.payload, nowMs: now) {
                    await report(record, commands: commands)
                    await deliver(to: message.device, commands: commands, now: now)
                }
            } catch {
                logger.error("cannot store a command result", metadata: ["device.id": "\(message.device)", "error": "\(error)"])
            }
        case .online(let device):
            if let commands { await deliver(to: device, commands: commands, now: now) }
            // CONTRACTS.md §7: a device coming online gets its delta, when there is one.
            if let shadows, !shadows.delta(device).isEmpty { await sendDelta(shadows.document(device), shadows: shadows) }
        case .linkUp, .tick:
            let retry = reportsOwed.exchange(false, ordering: .relaxed)
            if let shadows {
                if retry { for document in shadows.unreported() { await report(document, shadows: shadows) } }
                for document in shadows.undeliveredDeltas() where isOnline(document.device) { await sendDelta(document, shadows: shadows) }
            }
            guard let commands else { return }
            do {
                for record in try await commands.expire(nowMs: now) { await report(record, commands: commands) }
                if now >= purgeAt.load(ordering: .relaxed) {
                    _ = try await commands.purge(nowMs: now)
                    purgeAt.store(now + Self.purgeIntervalMs, ordering: .relaxed)
                }
                if retry { for record in try await commands.unreported() { await report(record, commands: commands) } }
            } catch {
                logger.error("cannot update the commands store", metadata: ["error": "\(error)"])
            }
            await deliver(to: nil, commands: commands, now: now)
        case .send(let device, let payload, let reply):
            guard let commands else { return reply(.failed("commands are off (commands.enabled)")) }
            await receive(device: device, payload: payload, commands: commands, now: now, reply: reply)
        case .cancel(let device, let commandID, let reply):
            guard let commands else { return reply(.failed("commands are off (commands.enabled)")) }
            do {
                switch try await commands.cancel(device: device, commandID: commandID, nowMs: now) {
                case .cancelled(let record):
                    await report(record, commands: commands)
                    reply(.cancelled(record))
                case .refused(let refusal):
                    reply(.refused(notFound: refusal.reason == .notFound, message: refusal.message))
                }
            } catch {
                reply(.failed("cannot store the cancel: \(error)"))
            }
        }
        await publishPending()
    }

    /// A cloud (or operator) command: stored and answered `queued`, or answered as it stands
    /// (a repeat), or refused.
    private func receive(
        device: DeviceID, payload: [UInt8], commands: CommandQueue, now: Int64, reply: (@Sendable (OperatorAnswer) -> Void)?
    ) async {
        let outcome: EnqueueOutcome
        do {
            if !isKnown(device) {
                let rejection = CommandRejection.unknownDevice(
                    commandID: CloudCommand.leadingCommandID(in: payload, limits: configuration.commands.limits))
                await commands.reject(rejection, device: device)
                outcome = .rejected(rejection)
            } else {
                outcome = try await commands.receive(device: device, payload: payload, nowMs: now)
            }
        } catch {
            logger.error("cannot store a cloud command", metadata: ["device.id": "\(device)", "error": "\(error)"])
            reply?(.failed("cannot store the command: \(error)"))
            return
        }
        switch outcome {
        case .queued(let record):
            // Stored (committed): it may go to the device at once; `queued` follows it upstream,
            // still before any later status of this command (the loop takes the device's answer
            // only after this input).
            await deliver(to: device, commands: commands, now: now)
            await report(record, commands: commands)
            reply?(.queued(record))
        case .repeated(let record):
            // Its current status again, as a new message (the cloud re-sends until it sees one).
            await append(
                device: device, eventID: "\u{1}command \(record.commandID) repeat \(UUID().uuidString)",
                payload: CommandStatusMessage.encode(record, hubID: configuration.hubID))
            reply?(.existing(record))
        case .rejected(let rejection):
            await append(
                device: device, eventID: "\u{1}command rejected \(UUID().uuidString)",
                payload: CommandStatusMessage.encode(rejection, device: device, hubID: configuration.hubID, at: now))
            reply?(.rejected(reason: rejection.reason.rawValue, detail: rejection.detail))
        }
    }

    /// Sends what is due now to `device` (or to every device), each on `device/{id}/command`, and
    /// notes the sends; a send the connection refuses stays due.
    private func deliver(to device: DeviceID?, commands: CommandQueue, now: Int64) async {
        let due = await commands.due(nowMs: now, isOnline: isOnline, device: device)
        guard !due.isEmpty else { return }
        var sent: [CommandKey] = []
        for delivery in due {
            do {
                try downlink.send(.command, to: delivery.device, payload: delivery.payload)
                sent.append(delivery.record.key)
            } catch {
                logger.debug("a command could not be sent now; it stays due", metadata: ["device.id": "\(delivery.device)", "error": "\(error)"])
            }
        }
        do {
            _ = try await commands.markSent(sent, nowMs: now)
        } catch {
            logger.error("cannot note sent commands", metadata: ["error": "\(error)"])
        }
    }

    /// Appends a command's new status for upstream; marks it reported once it is in the outbox.
    private func report(_ record: CommandRecord, commands: CommandQueue) async {
        let stored = await append(
            device: record.device, eventID: "\u{1}command \(record.commandID) \(record.receivedAt) \(record.status.rawValue)",
            payload: CommandStatusMessage.encode(record, hubID: configuration.hubID))
        if stored {
            _ = try? await commands.markReported(device: record.device, commandID: record.commandID, status: record.status)
        }
    }

    /// Appends one upstream message on the device's status topic; true when the outbox has it.
    @discardableResult
    private func append(device: DeviceID, eventID: String, payload: [UInt8]) async -> Bool {
        let record = OutboxRecord(
            device: device.rawValue, eventID: eventID, key: device.rawValue, receivedAt: Self.nowMs(), payload: payload,
            topic: commandTopic.topic(for: device, leaf: "/status"))
        switch await outbox.append([record]).first {
        case .stored, .duplicate: return true
        case .rejectedStoreFull, nil:
            reportsOwed.store(true, ordering: .relaxed)
            logger.warning("the outbox refused a command status (full); it is sent once there is room", metadata: ["device.id": "\(device)"])
            return false
        }
    }

    // MARK: - Shadows

    /// A cloud update of `desired` (CONTRACTS.md §7): merged and sent upstream whole, its delta to
    /// the device when it is online; refused on `<topic>/rejected`.
    private func update(device: DeviceID, payload: [UInt8], shadows: ShadowStore, now: Int64) async {
        let outcome: ShadowOutcome
        do {
            outcome = try await shadows.updateDesired(device, message: payload, nowMs: now)
        } catch {
            logger.error("cannot store a shadow update", metadata: ["device.id": "\(device)", "error": "\(error)"])
            return
        }
        switch outcome {
        case .applied(let document, _):
            await report(document, shadows: shadows)
            if isOnline(device), !document.delta.isEmpty { await sendDelta(document, shadows: shadows) }
        case .unchanged:
            break
        case .conflict(let refusal), .rejected(let refusal):
            let record = OutboxRecord(
                device: device.rawValue, eventID: "\u{1}shadow rejected \(UUID().uuidString)", key: device.rawValue, receivedAt: now,
                payload: refusal.encoded(), topic: shadowTopic.topic(for: device, leaf: "/rejected"))
            if case .rejectedStoreFull? = await outbox.append([record]).first {
                logger.warning("the outbox refused a shadow refusal (full); it is not sent", metadata: ["device.id": "\(device)"])
            }
        }
    }

    /// A device's report (merged into `reported`, the document upstream) or get (the document to it).
    private func shadowMessage(_ message: DeviceMessage, shadows: ShadowStore, now: Int64) async {
        if message.channel == .shadowGet {
            // From the hub's own copy: works while the uplink is down.
            do {
                try downlink.send(.shadowDocument, to: message.device, payload: shadows.encodedDocument(message.device))
            } catch {
                logger.debug("a shadow document could not be sent", metadata: ["device.id": "\(message.device)", "error": "\(error)"])
            }
            return
        }
        do {
            if case .applied(let document, _) = try await shadows.report(message.device, message: message.payload, nowMs: now) {
                await report(document, shadows: shadows)
            }
        } catch {
            logger.error("cannot store a shadow report", metadata: ["device.id": "\(message.device)", "error": "\(error)"])
        }
    }

    /// The whole document upstream (on `<topic>`), marked reported once the outbox has it. Its id
    /// names the version and the time of the change, so appending it again after a crash is a duplicate.
    private func report(_ document: ShadowDocument, shadows: ShadowStore) async {
        let record = OutboxRecord(
            device: document.device.rawValue, eventID: "\u{1}shadow \(document.version) \(document.updatedAt)", key: document.device.rawValue,
            receivedAt: Self.nowMs(), payload: document.encoded(), topic: shadowTopic.topic(for: document.device))
        switch await outbox.append([record]).first {
        case .stored, .duplicate:
            try? await shadows.markReported(document.device, version: document.version)
        case .rejectedStoreFull, nil:
            reportsOwed.store(true, ordering: .relaxed)
            logger.warning("the outbox refused a shadow document (full); it is sent once there is room", metadata: ["device.id": "\(document.device)"])
        }
    }

    /// `{"delta", "version"}` to the device; noted as sent when the connection took it.
    private func sendDelta(_ document: ShadowDocument, shadows: ShadowStore) async {
        do {
            try downlink.send(.shadowDelta, to: document.device, payload: document.encodedDelta())
        } catch {
            logger.debug("a shadow delta could not be sent now; it goes when the device is next online", metadata: ["device.id": "\(document.device)"])
            return
        }
        try? await shadows.markDeltaSent(document.device, version: document.version)
    }

    private func publishPending() async {
        guard let commands else { return }
        let pending = await commands.pending()
        publisher.update { $0.pending = Dictionary(uniqueKeysWithValues: pending.map { ($0.key.rawValue, $0.value) }) }
    }

    private var isOnline: @Sendable (DeviceID) -> Bool {
        { [activity] device in activity.isOnline(device, nowMs: Self.nowMs()) }
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// Resumes a continuation once, whoever calls first.
final class Once<Value: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<Value, Never>?>

    init(_ continuation: CheckedContinuation<Value, Never>) {
        self.continuation = Mutex(continuation)
    }

    @Sendable func resume(_ value: Value) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
