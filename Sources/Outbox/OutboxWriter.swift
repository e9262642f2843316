import Foundation
import GatewayCore
import Logging
import Platform
import Reporting
import SQLite

/// The single thread that writes the database. Appends, removals and maintenance are queued
/// here and applied in group commits: everything queued when a commit starts (or arriving within
/// `commitIntervalMs` of the first waiting append) shares one transaction and one fsync.
///
/// It is a plain thread, not a task, because `sqlite3_step` on COMMIT blocks in fsync and must
/// not hold a thread of Swift's cooperative pool.
final class OutboxWriter: @unchecked Sendable {
    // Everything below `condition` is guarded by it, except `db` and the fields marked
    // "writer thread only", which only the writer thread touches after `start()`.
    private let condition = NSCondition()
    private var queue: [Request] = []
    private var queuedRecords = 0
    private var firstQueuedAt: DispatchTime?
    /// When the oldest queued request that is not an append (a removal, maintenance) arrived.
    private var firstOtherQueuedAt: DispatchTime?
    /// Since when the oldest work not yet finished has been waiting (queued or being written).
    private var pendingSince: ContinuousClock.Instant?
    private var closing = false
    private var closed = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var pendingCounters: [String: Int64] = [:]
    private(set) var failure: OutboxError?

    private let db: SQLiteConnection  // writer thread only
    private let configuration: OutboxConfiguration
    private let logger: Logger
    private let dropLog: RateLimitedLog
    private let metrics = OutboxMetrics()
    private var totals: Totals  // writer thread only
    private var unflushedRemovals: [Int64] = []  // writer thread only
    private var unflushedCounters: [String: Int64] = [:]  // writer thread only
    private var warnedUnsyncedClock = false  // writer thread only
    private let reserve: SpaceReserve
    private var reserveHeld = false  // writer thread only
    private let onCommit: @Sendable (_ lastSeq: Int64, _ count: Int64, _ bytes: Int64) -> Void
    private let onFailure: @Sendable (OutboxError) -> Void

    struct Totals {
        var count: Int64
        var bytes: Int64
        var lastSeq: Int64
        /// Bytes waiting per device, for fair eviction under `dropOldest`. Read from the table the
        /// first time the store is full (never at start, which must stay fast with a large
        /// backlog), then kept with every change; rolled back with the rest of the totals.
        var deviceBytes: [String: Int64]?

        mutating func account(_ device: String, _ delta: Int64) {
            guard deviceBytes != nil else { return }
            let value = (deviceBytes?[device] ?? 0) + delta
            deviceBytes?[device] = value > 0 ? value : nil
        }
    }

    enum Request {
        case append([OutboxRecord], @Sendable ([AppendOutcome]) -> Void)
        case remove([Int64])
        case maintenance
    }

    init(
        db: SQLiteConnection,
        configuration: OutboxConfiguration,
        logger: Logger,
        onCommit: @escaping @Sendable (Int64, Int64, Int64) -> Void,
        onFailure: @escaping @Sendable (OutboxError) -> Void
    ) throws {
        self.db = db
        self.configuration = configuration
        self.logger = logger
        self.dropLog = RateLimitedLog(logger: logger, interval: .seconds(10))
        self.reserve = SpaceReserve(databasePath: configuration.path, bytes: configuration.reserveBytes)
        self.onCommit = onCommit
        self.onFailure = onFailure
        let stmt = try db.statement("SELECT count, bytes, last_seq FROM totals WHERE id = 1")
        guard try stmt.step() else { throw SQLiteError.corrupt("the totals row is missing") }
        totals = Totals(count: stmt.int64(0), bytes: stmt.int64(1), lastSeq: stmt.int64(2))
        stmt.reset()
        // The last committed seq also bounds what is in the table (a crash can't leave rows above it,
        // since both are written in one transaction); take the max for safety.
        if let maxSeq = try db.scalarInt("SELECT max(seq) FROM events"), maxSeq > totals.lastSeq {
            totals.lastSeq = maxSeq
        }
    }

    var initialTotals: Totals { totals }

    func start() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "outbox-writer"
        thread.start()
    }

    // MARK: - Producers (any thread)

    func enqueue(_ request: Request) {
        condition.lock()
        if closing || failure != nil {
            condition.unlock()
            // Closed or failed: an append is answered at once (never left hanging); removals and
            // maintenance have nothing left to act on.
            if case .append(let records, let completion) = request {
                completion(Array(repeating: .rejectedStoreFull, count: records.count))
            }
            return
        }
        if case .append(let records, _) = request {
            if firstQueuedAt == nil { firstQueuedAt = .now() }
            queuedRecords += records.count
        } else if firstOtherQueuedAt == nil {
            firstOtherQueuedAt = .now()
        }
        queue.append(request)
        if pendingSince == nil { pendingSince = .now }
        condition.signal()
        condition.unlock()
    }

    /// How long the oldest unfinished work has been waiting; zero when idle. A value that keeps
    /// growing means the writer is stuck (an fsync that never returns on a dying SD card).
    var stalledFor: Duration {
        condition.lock()
        defer { condition.unlock() }
        return pendingSince.map { $0.duration(to: .now) } ?? .zero
    }

    func addCounters(_ counters: [String: Int64]) {
        condition.lock()
        for (name, value) in counters { pendingCounters[name, default: 0] += value }
        // Counted with the next commit (a flood of rejected input must not become a flood of fsyncs).
        if firstOtherQueuedAt == nil { firstOtherQueuedAt = .now() }
        condition.signal()
        condition.unlock()
    }

    /// Finishes everything queued, checkpoints, and stops the thread.
    func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            condition.lock()
            if closed {
                condition.unlock()
                continuation.resume()
                return
            }
            closing = true
            closeWaiters.append(continuation)
            condition.signal()
            condition.unlock()
        }
    }

    // MARK: - Writer thread

    /// Longest a removal waits for company before it is committed on its own (seconds).
    static let removalDelay = 0.1

    private static func seconds(since instant: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - instant.uptimeNanoseconds) / 1e9
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && pendingCounters.isEmpty && !closing {
                condition.wait()
            }
            if queue.isEmpty && pendingCounters.isEmpty && closing {
                condition.unlock()
                break
            }
            // Removals (and maintenance) alone are not urgent: one lost in a crash only means
            // the event goes upstream once more. Let them collect for up to `removalDelay`, or
            // until an append comes and they share its commit: while draining a backlog this
            // turns one commit (and fsync, and rewrite of the same pages) per PUBACK window
            // into one per removalDelay.
            if firstQueuedAt == nil, let first = firstOtherQueuedAt, !closing {
                let deadline = Date(timeIntervalSinceNow: Self.removalDelay - Self.seconds(since: first))
                while firstQueuedAt == nil, !closing, condition.wait(until: deadline) {}
            }
            // Group commit: give other appends up to commitIntervalMs (from the first waiting
            // one) to join, unless the batch is full already.
            if configuration.commitIntervalMs > 0, let first = firstQueuedAt, !closing {
                let waited = DispatchTime.now().uptimeNanoseconds - first.uptimeNanoseconds
                let remaining = Double(configuration.commitIntervalMs) / 1000 - Double(waited) / 1e9
                if remaining > 0 {
                    let deadline = Date(timeIntervalSinceNow: remaining)
                    while queuedRecords < configuration.maxBatch, !closing, condition.wait(until: deadline) {}
                }
            }
            let work = queue
            queue.removeAll(keepingCapacity: true)
            queuedRecords = 0
            firstQueuedAt = nil
            firstOtherQueuedAt = nil
            let counters = pendingCounters
            pendingCounters.removeAll()
            condition.unlock()

            process(work, counters: counters)
            if failure != nil { break }
        }
        finish()
    }

    private func finish() {
        if failure == nil {
            if !unflushedRemovals.isEmpty { _ = try? applyInTransaction { try removeRows(unflushedRemovals) } }
            do {
                try db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            } catch {
                logger.warning("outbox checkpoint at close failed", metadata: ["error": "\(error)"])
            }
        }
        condition.lock()
        closed = true
        closing = true
        let waiters = closeWaiters
        closeWaiters.removeAll()
        // Anything that slipped in after a failure is answered, never left hanging.
        let leftovers = queue
        queue.removeAll()
        condition.unlock()
        for request in leftovers {
            if case .append(let records, let completion) = request {
                completion(Array(repeating: .rejectedStoreFull, count: records.count))
            }
        }
        for waiter in waiters { waiter.resume() }
    }

    private func process(_ work: [Request], counters: [String: Int64]) {
        var appends: [([OutboxRecord], @Sendable ([AppendOutcome]) -> Void)] = []
        var removals = unflushedRemovals
        unflushedRemovals.removeAll()
        // Counters that could not be written last time go with this transaction.
        var counters = counters
        for (name, value) in unflushedCounters { counters[name, default: 0] += value }
        unflushedCounters.removeAll()
        var maintenance = false
        for request in work {
            switch request {
            case .append(let records, let completion): appends.append((records, completion))
            case .remove(let seqs): removals.append(contentsOf: seqs)
            case .maintenance: maintenance = true
            }
        }
        // New events are taken only while the disk reserve is held (see SpaceReserve).
        if !reserveHeld { reserveHeld = reserve.hold(roomInFile: freeBytesInFile()) }
        let accepting = reserveHeld
        let appendCount = appends.reduce(0) { $0 + $1.0.count }
        var counterUpdates = counters
        let before = totals
        var outcomes: [[AppendOutcome]] = []
        if !accepting, appendCount > 0, removals.isEmpty {
            // Refusing new events, and nothing to remove: a commit would only spend the last free
            // space on counting them. Keep the counts for the next commit that frees space or
            // stores again.
            unflushedCounters = counters
            unflushedCounters[Self.storeFullCounter, default: 0] += Int64(appendCount)
            outcomes = appends.map { Array(repeating: .rejectedStoreFull, count: $0.0.count) }
            if appendCount > 0 {
                dropLog.warning(
                    key: "reserve", count: Int64(appendCount),
                    "file system nearly full: new events are refused with 'store full' until store.reserveBytes can be set aside",
                    metadata: ["store.reserveBytes": "\(configuration.reserveBytes)", "reserve": "\(reserve.path)"])
            }
        } else { do {
            try applyInTransaction {
                outcomes = []
                counterUpdates = counters
                try removeRows(removals)
                if accepting {
                    for (records, _) in appends {
                        outcomes.append(try appendRows(records, counters: &counterUpdates))
                    }
                } else if appendCount > 0 {
                    counterUpdates[Self.storeFullCounter, default: 0] += Int64(appendCount)
                    outcomes = appends.map { Array(repeating: .rejectedStoreFull, count: $0.0.count) }
                }
                try writeCounters(counterUpdates)
                try writeTotals()
            }
            if !accepting, appendCount > 0 {
                dropLog.warning(
                    key: "reserve", count: Int64(appendCount),
                    "file system nearly full: new events are refused with 'store full' until store.reserveBytes can be set aside",
                    metadata: ["store.reserveBytes": "\(configuration.reserveBytes)", "reserve": "\(reserve.path)"])
            }
        } catch let error as SQLiteError where !error.isCorruption {
            totals = before
            outcomes = recover(from: error, removals: removals, appends: appends.map(\.0), counters: counters)
        } catch {
            totals = before
            fail(error)
            outcomes = appends.map { Array(repeating: .rejectedStoreFull, count: $0.0.count) }
        } }

        // The write is finished: stop the stall clock before anyone hears of it.
        condition.lock()
        pendingSince = queue.isEmpty ? nil : .now
        condition.unlock()
        for (index, (_, completion)) in appends.enumerated() {
            completion(outcomes[index])
        }
        onCommit(totals.lastSeq, totals.count, totals.bytes)
        metrics.record(depth: totals.count, bytes: totals.bytes)
        var stored: Int64 = 0
        for batch in outcomes {
            for outcome in batch { if case .stored = outcome { stored += 1 } }
        }
        // What left the table in this commit: the upstream acknowledgements applied.
        metrics.committed(appended: stored, removed: max(0, before.count + stored - totals.count))

        if maintenance, failure == nil, runMaintenanceRound() {
            // More to do: queue the next round behind whatever arrived meanwhile.
            condition.lock()
            if !closing { queue.append(.maintenance) }
            condition.unlock()
        }
    }

    static let storeFullCounter = "reject.\(RejectReason.storeFull.rawValue)"

    /// After a write failed for lack of space (or an I/O error): commit the removals on their own
    /// to free space (when the file is full, together with dedup entries of events already gone),
    /// then, if that made room, try the new events once more. Returns the appends' outcomes;
    /// refused ones are `rejectedStoreFull` and counted with the next commit.
    private func recover(
        from error: SQLiteError, removals: [Int64], appends: [[OutboxRecord]], counters: [String: Int64]
    ) -> [[AppendOutcome]] {
        let refused = appends.map { Array(repeating: AppendOutcome.rejectedStoreFull, count: $0.count) }
        let appendCount = appends.reduce(0) { $0 + $1.count }
        let before = totals
        var forgotten = 0
        let freeSpace = {
            forgotten = 0
            try self.removeRows(removals)
            if error.isFull { forgotten = try self.forgetSeenToMakeRoom(limit: 5000) }
            try self.writeCounters(counters)
            try self.writeTotals()
        }
        var freed = false
        do {
            try applyInTransaction(freeSpace)
            freed = true
        } catch let second as SQLiteError where second.isFull {
            totals = before
            if reserveHeld, configuration.reserveBytes > 0 {
                // The file system itself is full (even a DELETE needs WAL space): give up the
                // reserve so forwarded events can still be removed; new events wait until the
                // space can be set aside again.
                reserve.release()
                reserveHeld = false
                dropLog.warning(
                    key: "reserve-released", count: 1,
                    "file system full: released the outbox's reserve to keep removing forwarded events; new events are refused until it can be set aside again",
                    metadata: ["store.reserveBytes": "\(configuration.reserveBytes)", "error": "\(second)"])
            }
            freed = removeInSmallSteps(removals)
            if freed { unflushedCounters = counters }
        } catch {
            totals = before
        }
        guard freed else {
            // Kept for the next transaction (the next request wakes the writer; nothing here
            // makes it spin on a full disk).
            if unflushedRemovals.isEmpty { unflushedRemovals = removals }
            unflushedCounters = counters
            unflushedCounters[Self.storeFullCounter, default: 0] += Int64(appendCount)
            dropLog.error(
                key: "write-failed", count: Int64(appendCount),
                "outbox write failed; new events are rejected with 'store full' until it succeeds",
                metadata: ["error": "\(error)"])
            return refused
        }
        if forgotten > 0 {
            dropLog.warning(
                key: "dedup-space", count: Int64(forgotten),
                "store full: forgot the oldest dedup entries of forwarded events to make room",
                metadata: ["store.maxFileBytes": "\(configuration.effectiveMaxFileBytes)"])
        }
        if error.isFull {
            // Hand the WAL's space back to the file system (a checkpoint may fail while full).
            _ = try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        }
        if appendCount > 0, forgotten > 0 || !removals.isEmpty, reserveHeld || reserve.hold(roomInFile: freeBytesInFile()) {
            reserveHeld = true
            let retryBefore = totals
            var outcomes: [[AppendOutcome]] = []
            do {
                try applyInTransaction {
                    outcomes = []
                    var retryCounters: [String: Int64] = [:]
                    for records in appends {
                        outcomes.append(try appendRows(records, counters: &retryCounters))
                    }
                    try writeCounters(retryCounters)
                    try writeTotals()
                }
                return outcomes
            } catch let third as SQLiteError where !third.isCorruption {
                totals = retryBefore
            } catch {
                totals = retryBefore
                fail(error)
                return refused
            }
        }
        if appendCount > 0 {
            // Written by the next commit, which this schedules.
            addCounters([Self.storeFullCounter: Int64(appendCount)])
            dropLog.error(
                key: "write-failed", count: Int64(appendCount),
                "outbox write failed; new events are rejected with 'store full' until it succeeds",
                metadata: ["error": "\(error)"])
        }
        return refused
    }

    private func deleteSeen(_ ids: [Int64]) throws {
        let delete = try db.statement("DELETE FROM seen WHERE id = ?")
        for id in ids {
            delete.reset()
            try delete.bind(1, id)
            try delete.step()
        }
    }

    /// Bytes in the database file's free pages (reused before the file grows).
    private func freeBytesInFile() -> Int64 {
        let pages = (try? db.scalarInt("PRAGMA freelist_count")) ?? 0
        let pageSize = (try? db.scalarInt("PRAGMA page_size")) ?? 4096
        return (pages ?? 0) * (pageSize ?? 4096)
    }

    /// Removes events a few at a time, checkpointing after each step, for when the disk is too
    /// full for one transaction: each step needs WAL space for a few pages only, and the
    /// checkpoint hands that space back before the next. Stops at the first step that fails and
    /// keeps the rest for later. Returns whether everything was removed.
    private func removeInSmallSteps(_ removals: [Int64]) -> Bool {
        var start = 0
        while start < removals.count {
            let step = Array(removals[start..<min(start + 16, removals.count)])
            let before = totals
            do {
                try applyInTransaction {
                    try removeRows(step)
                    try writeTotals()
                }
            } catch {
                totals = before
                unflushedRemovals = Array(removals[start...])
                return false
            }
            _ = try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            start += step.count
        }
        return true
    }

    /// Forgets the oldest dedup entries of events that are gone (forwarded, dropped or expired)
    /// when the file is full: a small `store.maxFileBytes` must not fill up with dedup memory and
    /// refuse events while the outbox is empty. The caller logs how many, once committed.
    private func forgetSeenToMakeRoom(limit: Int) throws -> Int {
        let oldestPending = try db.scalarInt("SELECT received_at FROM events ORDER BY seq LIMIT 1") ?? Int64.max
        let candidates = try db.statement("SELECT id, seen_at FROM seen ORDER BY id LIMIT ?")
        try candidates.bind(1, Int64(limit))
        var ids: [Int64] = []
        while try candidates.step() {
            guard candidates.int64(1) < oldestPending else { break }
            ids.append(candidates.int64(0))
        }
        candidates.reset()
        try deleteSeen(ids)
        return ids.count
    }

    private func fail(_ error: any Error) {
        let outboxError: OutboxError
        if let sqlite = error as? SQLiteError, sqlite.isCorruption {
            outboxError = OutboxError(.corrupt, "\(sqlite)")
        } else if let existing = error as? OutboxError {
            outboxError = existing
        } else {
            outboxError = OutboxError(.io, "\(error)")
        }
        if outboxError.code == .corrupt {
            // The next start checks the whole file and quarantines it if the check fails.
            FileManager.default.createFile(atPath: Outbox.checkMarkerPath(configuration.path), contents: nil)
        }
        logger.critical("outbox failed", metadata: ["error": "\(outboxError)"])
        condition.lock()
        failure = outboxError
        condition.unlock()
        onFailure(outboxError)
    }

    private func applyInTransaction(_ body: () throws -> Void) throws {
        try db.execute("BEGIN IMMEDIATE")
        do {
            try body()
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    private func removeRows(_ seqs: [Int64]) throws {
        guard !seqs.isEmpty else { return }
        let stmt = try db.statement("DELETE FROM events WHERE seq = ? RETURNING size, device")
        for seq in seqs {
            stmt.reset()
            try stmt.bind(1, seq)
            if try stmt.step() {
                totals.count -= 1
                totals.bytes -= stmt.int64(0)
                if totals.deviceBytes != nil { totals.account(stmt.text(1), -stmt.int64(0)) }
                while try stmt.step() {}
            }
        }
    }

    private func appendRows(_ records: [OutboxRecord], counters: inout [String: Int64]) throws -> [AppendOutcome] {
        let markSeen = try db.statement("INSERT OR IGNORE INTO seen(device, event_id, seen_at) VALUES (?, ?, ?)")
        let insert = try db.statement(
            "INSERT INTO events(seq, device, event_id, key, received_at, size, payload) VALUES (?, ?, ?, ?, ?, ?, ?)")
        var outcomes: [AppendOutcome] = []
        outcomes.reserveCapacity(records.count)
        for record in records {
            markSeen.reset()
            try markSeen.bind(1, record.device)
            try markSeen.bind(2, record.eventID)
            try markSeen.bind(3, record.receivedAt)
            try markSeen.step()
            if db.changes == 0 {
                outcomes.append(.duplicate)
                continue
            }
            let size = record.accountedSize
            if totals.bytes + size > configuration.maxBytes {
                let fits: Bool
                switch configuration.whenFull {
                case .rejectNew:
                    fits = false
                case .dropOldest:
                    fits = try evictOldest(toFit: size, counters: &counters)
                }
                if !fits {
                    let forget = try db.statement("DELETE FROM seen WHERE device = ? AND event_id = ?")
                    try forget.bind(1, record.device)
                    try forget.bind(2, record.eventID)
                    try forget.step()
                    counters[Self.storeFullCounter, default: 0] += 1
                    outcomes.append(.rejectedStoreFull)
                    continue
                }
            }
            let seq = totals.lastSeq + 1
            insert.reset()
            try insert.bind(1, seq)
            try insert.bind(2, record.device)
            try insert.bind(3, record.eventID)
            try insert.bind(4, record.key)
            try insert.bind(5, record.receivedAt)
            try insert.bind(6, size)
            try insert.bind(7, blob: record.payload)
            try insert.step()
            totals.lastSeq = seq
            totals.count += 1
            totals.bytes += size
            totals.account(record.device, size)
            outcomes.append(.stored(seq: seq))
        }
        return outcomes
    }

    /// Drops events until `size` more bytes fit; `false` if even an empty store can't hold it.
    /// Fair per device: the device holding the most bytes loses its oldest events first, so one
    /// noisy device evicts its own backlog, not every other device's undelivered events.
    private func evictOldest(toFit size: Int64, counters: inout [String: Int64]) throws -> Bool {
        guard size <= configuration.maxBytes else { return false }
        // Under dropOldest a burst larger than the whole cap can evict events appended earlier in
        // this same transaction: they are acked `stored` and counted as capacity drops, exactly as
        // if they had been evicted one commit later, which is what the policy promises.
        if totals.deviceBytes == nil {
            var perDevice: [String: Int64] = [:]
            let sums = try db.statement("SELECT device, sum(size) FROM events GROUP BY device")
            while try sums.step() { perDevice[sums.text(0)] = sums.int64(1) }
            totals.deviceBytes = perDevice
        }
        // Rows of one device in sequence order; without an index on device this walks the table
        // from its oldest row and stops after 64 matches, which is short for the heaviest device.
        let oldest = try db.statement("SELECT seq, size FROM events WHERE device = ? ORDER BY seq LIMIT 64")
        let delete = try db.statement("DELETE FROM events WHERE seq = ?")
        var dropped: Int64 = 0
        while totals.bytes + size > configuration.maxBytes {
            guard let heaviest = totals.deviceBytes?.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) })?.key
            else { break }
            oldest.reset()
            try oldest.bind(1, heaviest)
            var victims: [(Int64, Int64)] = []
            while try oldest.step() { victims.append((oldest.int64(0), oldest.int64(1))) }
            guard !victims.isEmpty else {
                // The map disagrees with the table (it cannot, but never loop on it): read it again.
                totals.deviceBytes = nil
                return try evictOldest(toFit: size, counters: &counters)
            }
            for (seq, victimSize) in victims where totals.bytes + size > configuration.maxBytes {
                // Between two devices the heavier one keeps losing; re-pick once this one is no longer it.
                if let current = totals.deviceBytes?[heaviest], let top = totals.deviceBytes?.values.max(), current < top { break }
                delete.reset()
                try delete.bind(1, seq)
                try delete.step()
                totals.count -= 1
                totals.bytes -= victimSize
                totals.account(heaviest, -victimSize)
                dropped += 1
            }
        }
        if dropped > 0 {
            metrics.dropped(.capacity, count: dropped)
            counters["drop.\(DropReason.capacity.rawValue)", default: 0] += dropped
            dropLog.warning(
                key: "capacity", count: dropped,
                "outbox full: dropped the oldest events of the device holding the most (store.whenFull: dropOldest)",
                metadata: ["reason": "capacity", "store.maxBytes": "\(configuration.maxBytes)"])
        }
        return totals.bytes + size <= configuration.maxBytes
    }

    private func writeCounters(_ counters: [String: Int64]) throws {
        guard !counters.isEmpty else { return }
        let stmt = try db.statement(
            "INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")
        for (name, value) in counters where value != 0 {
            stmt.reset()
            try stmt.bind(1, name)
            try stmt.bind(2, value)
            try stmt.step()
        }
    }

    private func writeTotals() throws {
        let stmt = try db.statement("UPDATE totals SET count = ?, bytes = ?, last_seq = ? WHERE id = 1")
        try stmt.bind(1, totals.count)
        try stmt.bind(2, totals.bytes)
        try stmt.bind(3, totals.lastSeq)
        try stmt.step()
    }

    /// One round of upkeep: expire up to 500 old events, forget up to 2000 dedup entries. Returns
    /// whether more is left, so the loop can queue another round behind waiting appends instead
    /// of holding the writer for the whole backlog.
    ///
    /// Ages come from the wall clock, which on a hub without a real-time clock can be days behind
    /// until NTP syncs; a jump forward would make fresh events look old. So nothing is expired or
    /// forgotten by age while the kernel reports the clock unsynchronised.
    private func runMaintenanceRound() -> Bool {
        let clockTrusted = !configuration.requireSyncedClock || SystemClock.isSynchronized
        if !clockTrusted, !warnedUnsyncedClock {
            warnedUnsyncedClock = true
            logger.warning("system clock not synchronised; expiry by age is paused until it is (store.requireSyncedClock)")
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            var expired: Int64 = 0
            var forgotten = 0
            let before = totals
            do {
                try applyInTransaction {
                    if clockTrusted {
                        expired = try expireOldest(before: now - configuration.maxAgeSeconds * 1000, limit: 500)
                    }
                    forgotten = try forgetSeen(now: now, clockTrusted: clockTrusted, limit: 2000)
                    if expired > 0 {
                        try writeCounters(["drop.\(DropReason.expired.rawValue)": expired])
                        try writeTotals()
                    }
                }
            } catch {
                totals = before
                throw error
            }
            if expired > 0 {
                metrics.dropped(.expired, count: expired)
                dropLog.warning(
                    key: "expired", count: expired, "outbox: dropped events older than store.maxAgeSeconds",
                    metadata: ["reason": "expired"])
                onCommit(totals.lastSeq, totals.count, totals.bytes)
            }
            return expired == 500 || forgotten == 2000
        } catch let error as SQLiteError where !error.isCorruption {
            logger.warning("outbox maintenance failed; retrying later", metadata: ["error": "\(error)"])
        } catch {
            fail(error)
        }
        return false
    }

    /// Deletes the oldest events received before `cutoff`, walking in sequence order and stopping
    /// at the first younger one, so the cost is what is deleted, not the backlog.
    private func expireOldest(before cutoff: Int64, limit: Int) throws -> Int64 {
        let oldest = try db.statement("SELECT seq, size, received_at, device FROM events ORDER BY seq LIMIT ?")
        try oldest.bind(1, Int64(limit))
        var victims: [(seq: Int64, size: Int64, device: String)] = []
        while try oldest.step() {
            guard oldest.int64(2) < cutoff else { break }
            victims.append((oldest.int64(0), oldest.int64(1), oldest.text(3)))
        }
        oldest.reset()
        let delete = try db.statement("DELETE FROM events WHERE seq = ?")
        for victim in victims {
            delete.reset()
            try delete.bind(1, victim.seq)
            try delete.step()
            totals.count -= 1
            totals.bytes -= victim.size
            totals.account(victim.device, -victim.size)
        }
        return Int64(victims.count)
    }

    /// Forgets dedup entries past `dedupRetentionSeconds` or beyond the newest `dedupMaxEntries`,
    /// oldest first, but never one whose event is still waiting to be forwarded: a device that
    /// retries during a long outage must still get `duplicate`.
    private func forgetSeen(now: Int64, clockTrusted: Bool, limit: Int) throws -> Int {
        // Dedup entries are written with their event, so every entry older than the oldest
        // pending event belongs to an event that is gone (forwarded, dropped or expired).
        let oldestPending = try db.scalarInt("SELECT received_at FROM events ORDER BY seq LIMIT 1") ?? Int64.max
        let newestSeen = try db.scalarInt("SELECT max(id) FROM seen") ?? 0
        let countCutoff = newestSeen - Int64(configuration.dedupMaxEntries)
        let timeCutoff = clockTrusted ? now - configuration.dedupRetentionSeconds * 1000 : Int64.min
        let candidates = try db.statement("SELECT id, seen_at FROM seen ORDER BY id LIMIT ?")
        try candidates.bind(1, Int64(limit))
        var ids: [Int64] = []
        var overCount = 0
        while try candidates.step() {
            let id = candidates.int64(0)
            let seenAt = candidates.int64(1)
            guard seenAt < oldestPending, id <= countCutoff || seenAt < timeCutoff else { break }
            if id <= countCutoff, !(seenAt < timeCutoff) { overCount += 1 }
            ids.append(id)
        }
        candidates.reset()
        try deleteSeen(ids)
        if overCount > 0 {
            dropLog.warning(
                key: "dedup", count: Int64(overCount),
                "dedup memory full: forgot the oldest event ids before store.dedupRetentionSeconds (store.dedupMaxEntries)",
                metadata: ["store.dedupMaxEntries": "\(configuration.dedupMaxEntries)"])
        }
        return ids.count
    }
}
