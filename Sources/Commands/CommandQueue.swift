import GatewayCore
import Logging
import SQLite

/// The durable queue of cloud → device commands (CONTRACTS.md §6): it stores commands, decides
/// what to send to which device and when, takes the devices' results, expires, cancels and purges.
///
/// Guarantees:
/// - Every state change is committed to SQLite (`synchronous=FULL`) before the call that made it
///   returns, and only then applied in memory: a caller answers upstream (`queued`, `delivered`,
///   …) only about committed states, and ``due(nowMs:isOnline:device:)`` never offers a command
///   that is not durably stored.
/// - Changes are made one at a time, in the order they were asked for; reads (``due(nowMs:isOnline:device:)``,
///   ``nextWake(nowMs:isOnline:)``, ``pending()``) never wait for the disk: the unfinished
///   commands are kept in memory (loaded at ``open(path:configuration:logger:)``).
/// - A status never goes backwards: a final status is final, `accepted` after it changes nothing.
/// - Time is passed in (`nowMs`, ms since the epoch): the queue never reads a clock.
///
/// The caller (the daemon) does the I/O:
/// ```swift
/// let queue = try await CommandQueue.open(path: path, configuration: configuration, logger: logger)
/// for record in try await queue.unreported() { … } // append each status message to the outbox, then markReported
/// switch try await queue.receive(device: device, payload: payload, nowMs: now) { … } // answer upstream
/// _ = try await queue.expire(nowMs: now)
/// for delivery in await queue.due(nowMs: now, isOnline: presence.isOnline) {
///     try await queue.markSent([delivery.record.key], nowMs: now)
///     publish(delivery.payload, to: "device/\(delivery.device)/command")
/// }
/// let wake = await queue.nextWake(nowMs: now, isOnline: presence.isOnline) // sleep until then, or until an event
/// ```
public actor CommandQueue {
    /// The limits in force (``reload(_:)`` replaces them).
    public private(set) var configuration: CommandsConfiguration
    private let store: CommandStore
    private let logger: Logger
    private let metrics = CommandMetrics()
    private var book: CommandBook
    private var lastChange: Int64
    /// One change at a time: a change awaits its commit before the next one reads the book.
    private var changing = false
    private var waitingToChange: [CheckedContinuation<Void, Never>] = []

    private init(configuration: CommandsConfiguration, store: CommandStore, book: CommandBook, lastChange: Int64, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.book = book
        self.lastChange = lastChange
        self.logger = logger
        metrics.pending.record(book.count)
    }

    /// Opens (creates) the store at `path` and loads the unfinished commands.
    public static func open(path: String, configuration: CommandsConfiguration, logger: Logger) async throws(SQLiteError) -> CommandQueue {
        let store = try CommandStore(path: path)
        let loaded: (unfinished: [CommandRecord], lastChange: Int64)
        do {
            loaded = try await store.load()
        } catch {
            await store.close()
            throw error
        }
        return CommandQueue(
            configuration: configuration, store: store, book: CommandBook(loaded.unfinished), lastChange: loaded.lastChange, logger: logger)
    }

    /// Lets changes already asked for finish, then closes the store; later calls that need the
    /// store fail with a ``SQLiteError``.
    public func close() async {
        await beginChange()
        defer { endChange() }
        await store.close()
    }

    /// New limits (a configuration reload): they apply to the next decision. Commands already
    /// stored stay, also where they exceed a lowered `maxPerDevice` or `maxTotal`.
    public func reload(_ configuration: CommandsConfiguration) {
        self.configuration = configuration
    }

    private var ackTimeoutMs: Int64 { .milliseconds(seconds: configuration.ackTimeoutSeconds) }

    // MARK: - Cloud commands

    /// Parses a cloud command for `device` and enqueues it (``enqueue(_:nowMs:)``). A payload
    /// that cannot be taken but names a stored command (a repeat whose `expiresAt` has passed
    /// since, say) is answered as a repeat with that command's status; otherwise it is rejected,
    /// counted and logged.
    public func receive(device: DeviceID, payload: [UInt8], nowMs: Int64) async throws(SQLiteError) -> EnqueueOutcome {
        switch CloudCommand.parse(device: device, payload: payload, nowMs: nowMs, limits: configuration.limits) {
        case .success(let command):
            return try await enqueue(command, nowMs: nowMs)
        case .failure(let rejection):
            if let commandID = rejection.commandID, let existing = try await record(device: device, commandID: commandID) {
                return repeated(existing)
            }
            reject(rejection, device: device)
            return .rejected(rejection)
        }
    }

    /// Stores `command` as `queued` (committed when this returns) unless its `(device,
    /// commandId)` is stored already (answered with its current status, also when the queue is
    /// full) or the queue is full: `commands.maxPerDevice` unfinished commands of this device, or
    /// `commands.maxTotal` of all (`rejected`, reason `queue full`).
    public func enqueue(_ command: CloudCommand, nowMs: Int64) async throws(SQLiteError) -> EnqueueOutcome {
        await beginChange()
        defer { endChange() }
        let key = CommandKey(device: command.device, commandID: command.commandID)
        if let existing = book[key] { return repeated(existing) }
        var refusal: CommandRejection? = nil
        if command.isExpired(at: nowMs) {
            refusal = .invalid(.alreadyExpired, "expiresAt is in the past", commandID: command.commandID)
        } else if book.count(of: command.device) >= configuration.maxPerDevice {
            refusal = CommandRejection(
                reason: .queueFull, kind: .deviceQueueFull,
                detail: "the device has \(configuration.maxPerDevice) unfinished commands (commands.maxPerDevice)", commandID: command.commandID)
        } else if book.count >= configuration.maxTotal {
            refusal = CommandRejection(
                reason: .queueFull, kind: .hubQueueFull,
                detail: "the hub holds \(configuration.maxTotal) unfinished commands (commands.maxTotal)", commandID: command.commandID)
        }
        switch try await store.insert(command, changeSeq: lastChange + 1, refuse: refusal != nil) {
        case .existing(let existing):
            return repeated(existing)
        case .refused:
            let rejection = refusal!
            reject(rejection, device: command.device)
            return .rejected(rejection)
        case .inserted(let seq):
            lastChange += 1
            let record = CommandRecord(
                device: command.device, commandID: command.commandID, name: command.name, params: command.params,
                expiresAt: command.expiresAt, receivedAt: command.receivedAt, status: .queued, result: nil, message: nil,
                updatedAt: command.receivedAt, attempts: 0, lastSentAt: nil, seq: seq, changeSeq: lastChange, reportedStatus: nil)
            apply([record])
            return .queued(record)
        }
    }

    /// Counts and logs a command the hub refused; for the caller's own refusals too
    /// (``CommandRejection/unknownDevice(commandID:)``).
    public func reject(_ rejection: CommandRejection, device: DeviceID) {
        metrics.rejected[rejection.kind]?.increment()
        var metadata: Logger.Metadata = ["device.id": "\(device)", "reason": "\(rejection.kind.rawValue)", "detail": "\(rejection.message)"]
        if let commandID = rejection.commandID { metadata["command.id"] = "\(commandID)" }
        logger.info("command rejected", metadata: metadata)
    }

    private func repeated(_ record: CommandRecord) -> EnqueueOutcome {
        metrics.repeated.increment()
        logger.debug(
            "repeated command answered with its status",
            metadata: ["device.id": "\(record.device)", "command.id": "\(record.commandID)", "command.status": "\(record.status.rawValue)"])
        return .repeated(record)
    }

    // MARK: - Delivery

    /// The publishes to make now, in queue order (see ``CommandBook``'s rules): per online device
    /// at most `commands.inflightPerDevice` sent and unfinished; re-sends (same `commandId`) of
    /// those neither accepted nor finished within `commands.ackTimeoutSeconds`; never an expired
    /// one (call ``expire(nowMs:)`` first to report those). Reads memory only. Call
    /// ``markSent(_:nowMs:)`` for each before asking again, or they are offered again.
    public func due(nowMs: Int64, isOnline: @Sendable (DeviceID) -> Bool, device: DeviceID? = nil) -> [CommandDelivery] {
        book.due(nowMs: nowMs, ackTimeoutMs: ackTimeoutMs, inflight: configuration.inflightPerDevice, isOnline: isOnline, only: device)
    }

    /// When something next becomes due without a new event: an expiry, or a re-send to an online
    /// device (a time at or before `nowMs` means now); nil when nothing will. A device coming
    /// online, a new command and a result are events: ask ``due(nowMs:isOnline:device:)`` then.
    public func nextWake(nowMs: Int64, isOnline: @Sendable (DeviceID) -> Bool) -> Int64? {
        book.nextWake(nowMs: nowMs, ackTimeoutMs: ackTimeoutMs, inflight: configuration.inflightPerDevice, isOnline: isOnline)
    }

    /// Records a publish of each command (attempts + 1, lastSentAt), in one commit. Commands that
    /// finished meanwhile are skipped. Returns the records as now stored.
    @discardableResult
    public func markSent(_ keys: [CommandKey], nowMs: Int64) async throws(SQLiteError) -> [CommandRecord] {
        await beginChange()
        defer { endChange() }
        var sent: [CommandRecord] = []
        for key in keys {
            // A command that was accepted or finished meanwhile is not counted as sent again (one
            // accepted before a restart, whose result is in doubt, is).
            guard var record = book[key] ?? sent.last(where: { $0.key == key }), record.status == .queued || book.isInDoubt(record)
            else { continue }
            sent.removeAll { $0.key == key }
            record.attempts += 1
            record.lastSentAt = nowMs
            sent.append(record)
        }
        try await store.update(sent)
        for record in sent {
            (record.attempts == 1 ? metrics.firstSends : metrics.resends).increment()
            logger.info(
                record.attempts == 1 ? "command sent" : "command sent again",
                metadata: [
                    "device.id": "\(record.device)", "command.id": "\(record.commandID)", "command.name": "\(record.name)",
                    "command.attempt": "\(record.attempts)",
                ])
        }
        book.putAll(sent)
        return sent
    }

    /// One command's publish (``markSent(_:nowMs:)``); nil when it is not unfinished.
    @discardableResult
    public func markSent(device: DeviceID, commandID: String, nowMs: Int64) async throws(SQLiteError) -> CommandRecord? {
        try await markSent([CommandKey(device: device, commandID: commandID)], nowMs: nowMs).first
    }

    // MARK: - Device results

    /// Parses a device's result (``DeviceCommandResult/parse(payload:limits:)``) and applies it;
    /// an unreadable one is ignored (reason `invalid`), counted and logged.
    public func result(device: DeviceID, payload: [UInt8], nowMs: Int64) async throws(SQLiteError) -> ResultOutcome {
        switch DeviceCommandResult.parse(payload: payload, limits: configuration.limits) {
        case .success(let result):
            return try await self.result(device: device, result, nowMs: nowMs)
        case .failure(let rejection):
            return ignore(IgnoredResult(reason: .invalid, record: nil, detail: rejection.detail), device: device, commandID: rejection.commandID)
        }
    }

    /// Applies a device's result: `accepted` makes a queued command `delivered`; `succeeded`,
    /// `failed`, `rejected` finish an unfinished one (with or without a prior `accepted`), with the
    /// device's `result` and `message`. A result for an unknown or finished command, and
    /// `accepted` for a delivered one, change nothing and are counted.
    public func result(device: DeviceID, _ result: DeviceCommandResult, nowMs: Int64) async throws(SQLiteError) -> ResultOutcome {
        await beginChange()
        defer { endChange() }
        let key = CommandKey(device: device, commandID: result.commandID)
        guard var record = book[key] else {
            let stored = try await store.find(key)
            let ignored = stored.map { IgnoredResult(reason: .finished, record: $0, detail: "the command is \($0.status.rawValue) already") }
                ?? IgnoredResult(reason: .unknown, record: nil, detail: "no such command for this device")
            return ignore(ignored, device: device, commandID: result.commandID)
        }
        book.heardFrom(key)
        let status = result.status.commandStatus
        guard status.rank > record.status.rank else {
            return ignore(
                IgnoredResult(reason: .repeated, record: record, detail: "accepted again"), device: device, commandID: result.commandID)
        }
        record.status = status
        record.result = result.result
        record.message = result.message
        try await commit(&record, nowMs: nowMs)
        return .changed(record)
    }

    private func ignore(_ ignored: IgnoredResult, device: DeviceID, commandID: String?) -> ResultOutcome {
        metrics.ignored[ignored.reason]?.increment()
        var metadata: Logger.Metadata = ["device.id": "\(device)", "reason": "\(ignored.reason.rawValue)", "detail": "\(ignored.detail)"]
        if let commandID { metadata["command.id"] = "\(commandID)" }
        logger.debug("device command result ignored", metadata: metadata)
        return .ignored(ignored)
    }

    // MARK: - Expiry, cancel, retention

    /// Every unfinished command at or past its `expiresAt` becomes `expired`, sent or not, in
    /// one commit. Returns them (each to be reported upstream), in queue order.
    public func expire(nowMs: Int64) async throws(SQLiteError) -> [CommandRecord] {
        await beginChange()
        defer { endChange() }
        var expired = book.expired(nowMs: nowMs)
        guard !expired.isEmpty else { return [] }
        for index in expired.indices {
            expired[index].status = .expired
            // What the device said with `accepted` no longer describes the command.
            expired[index].result = nil
            expired[index].message = nil
        }
        try await commit(&expired, nowMs: nowMs)
        return expired
    }

    /// The operator takes back a command the device was never sent: it becomes `rejected` with
    /// message `cancelled`. Refused when there is no such command, or it was sent, accepted or
    /// finished already (counted).
    public func cancel(device: DeviceID, commandID: String, nowMs: Int64) async throws(SQLiteError) -> CancelOutcome {
        await beginChange()
        defer { endChange() }
        let key = CommandKey(device: device, commandID: commandID)
        guard var record = book[key] else {
            let stored = try await store.find(key)
            return refuse(CancelRefusal(reason: stored == nil ? .notFound : .alreadyFinished, record: stored), device: device, commandID: commandID)
        }
        if record.status == .delivered { return refuse(CancelRefusal(reason: .alreadyDelivered, record: record), device: device, commandID: commandID) }
        if record.attempts > 0 { return refuse(CancelRefusal(reason: .alreadySent, record: record), device: device, commandID: commandID) }
        record.status = .rejected
        record.result = nil
        record.message = "cancelled"
        try await commit(&record, nowMs: nowMs)
        return .cancelled(record)
    }

    private func refuse(_ refusal: CancelRefusal, device: DeviceID, commandID: String) -> CancelOutcome {
        metrics.cancelRefused[refusal.reason]?.increment()
        logger.info(
            "command cancel refused",
            metadata: ["device.id": "\(device)", "command.id": "\(CommandJSON.forLog(commandID))", "reason": "\(refusal.reason.rawValue)"])
        return .refused(refusal)
    }

    /// Removes finished commands that finished more than `commands.retentionSeconds` before
    /// `nowMs` and whose final status was reported (``markReported(device:commandID:status:)``);
    /// a later repeat of one is a new command. Returns how many.
    @discardableResult
    public func purge(nowMs: Int64) async throws(SQLiteError) -> Int {
        await beginChange()
        defer { endChange() }
        let removed = try await store.purge(finishedBefore: nowMs.addingClamped(-.milliseconds(seconds: configuration.retentionSeconds)))
        if removed > 0 {
            metrics.purged.increment(by: Int64(removed))
            logger.debug("finished commands purged", metadata: ["count": "\(removed)"])
        }
        return removed
    }

    // MARK: - Reporting upstream

    /// Commands whose current status has no confirmed upstream message (after a crash, or an
    /// outbox that refused it), in the order of their changes: append each one's
    /// ``CommandStatusMessage`` to the outbox, then ``markReported(device:commandID:status:)``.
    public func unreported() async throws(SQLiteError) -> [CommandRecord] {
        try await store.unreported()
    }

    /// The caller stored the upstream message of `status` in the outbox. A status the command has
    /// not reached, or one older than what was confirmed already, changes nothing. Returns
    /// whether the command is now fully reported (its current status confirmed); false also
    /// when there is no such command.
    @discardableResult
    public func markReported(device: DeviceID, commandID: String, status: CommandStatus) async throws(SQLiteError) -> Bool {
        await beginChange()
        defer { endChange() }
        guard let record = try await store.markReported(CommandKey(device: device, commandID: commandID), status: status) else { return false }
        if book[record.key] != nil { book.put(record) }
        return !record.isUnreported
    }

    // MARK: - Operator's view

    /// The command as stored (unfinished or finished), nil when unknown.
    public func record(device: DeviceID, commandID: String) async throws(SQLiteError) -> CommandRecord? {
        // In turn with changes: never a command half-way between memory and disk.
        await beginChange()
        defer { endChange() }
        let key = CommandKey(device: device, commandID: commandID)
        if let record = book[key] { return record }
        return try await store.find(key)
    }

    /// For the operator: the unfinished commands of `device` (or of all devices) in queue order,
    /// then up to `recentLimit` finished ones, most recently finished first.
    public func list(device: DeviceID?, recentLimit: Int = 100) async throws(SQLiteError) -> [CommandRecord] {
        await beginChange()
        defer { endChange() }
        let unfinished = book.unfinished(device: device)
        return unfinished + (try await store.finished(device: device, limit: recentLimit))
    }

    /// Unfinished commands per device (devices without any are absent).
    public func pending() -> [DeviceID: PendingCommands] { book.pending() }

    public func pending(device: DeviceID) -> PendingCommands { book.pending(device) }

    // MARK: - Changes

    private func commit(_ record: inout CommandRecord, nowMs: Int64) async throws(SQLiteError) {
        var records = [record]
        try await commit(&records, nowMs: nowMs)
        record = records[0]
    }

    /// Gives each record its change number and time, commits them, then applies them in memory
    /// (a failed commit changes nothing) and logs and counts each state change.
    private func commit(_ records: inout [CommandRecord], nowMs: Int64) async throws(SQLiteError) {
        var change = lastChange
        for index in records.indices {
            change += 1
            records[index].changeSeq = change
            records[index].updatedAt = nowMs
        }
        try await store.update(records)
        lastChange = change
        apply(records)
    }

    private func apply(_ records: [CommandRecord]) {
        book.putAll(records)
        for record in records {
            metrics.changes[record.status]?.increment()
            var metadata: Logger.Metadata = [
                "device.id": "\(record.device)", "command.id": "\(record.commandID)", "command.name": "\(record.name)",
                "command.status": "\(record.status.rawValue)",
            ]
            if let message = record.message { metadata["command.message"] = "\(CommandJSON.forLog(message))" }
            logger.info("command \(record.status.rawValue)", metadata: metadata)
        }
    }

    private func beginChange() async {
        if changing {
            await withCheckedContinuation { waitingToChange.append($0) }
        } else {
            changing = true
        }
    }

    /// Hands the turn to the next waiting change (which then owns `changing`), or frees it.
    private func endChange() {
        metrics.pending.record(book.count)
        if waitingToChange.isEmpty {
            changing = false
        } else {
            waitingToChange.removeFirst().resume()
        }
    }
}

extension CommandBook {
    mutating func putAll(_ records: [CommandRecord]) {
        for record in records { put(record) }
    }
}

extension CloudCommand {
    func isExpired(at nowMs: Int64) -> Bool {
        expiresAt.map { nowMs >= $0 } ?? false
    }
}
