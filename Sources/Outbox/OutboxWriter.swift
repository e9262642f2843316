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
///
/// This file holds the thread, the request queue and the group-commit scheduler. The writer's
/// other jobs are extensions in files of their own: one batch's commit and the totals
/// (`OutboxTransaction.swift`), the row SQL with fair eviction (`OutboxRows.swift`), recovery
/// when the disk is full (`DiskFullRecovery.swift`) and upkeep (`OutboxMaintenance.swift`).
final class OutboxWriter: @unchecked Sendable {
    // Everything below `condition` is guarded by it, except `db` and the fields marked
    // "writer thread only", which only the writer thread touches after `start()`. Fields the
    // extensions in the sibling files use are internal rather than private for that reason only:
    // nothing outside `OutboxWriter` touches them.
    let condition = NSCondition()
    var queue: [Request] = []
    private var queuedRecords = 0
    private var firstQueuedAt: DispatchTime?
    /// When the oldest queued request that is not an append (a removal, maintenance) arrived.
    private var firstOtherQueuedAt: DispatchTime?
    /// Since when the oldest work not yet finished has been waiting (queued or being written).
    var pendingSince: ContinuousClock.Instant?
    var closing = false
    private var closed = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var pendingCounters: [String: Int64] = [:]
    private(set) var failure: OutboxError?

    let db: SQLiteConnection  // writer thread only
    let configuration: OutboxConfiguration
    let logger: Logger
    let dropLog: RateLimitedLog
    let metrics: OutboxMetrics
    var totals: Totals  // writer thread only
    /// Per-device counts for readers; the writer applies its committed changes.
    let tallies: DeviceTallies
    var unflushedRemovals: [Int64] = []  // writer thread only
    /// Forwarded events whose removal waits in memory (`store.removalDelayMs`), and since when.
    var deferredRemovals: [Int64] = []  // writer thread only
    var deferredSince: DispatchTime?  // writer thread only
    /// `totals.lastSeq` when the totals row was last written: the row counts every event up to it.
    var totalsWrittenThrough: Int64 = 0  // writer thread only
    /// Set by whatever deletes events inside the current transaction (the totals row must go with it).
    var rowsDeleted = false  // writer thread only
    /// Bytes the current group may still evict under `dropOldest` (writer thread only; see
    /// ``OutboxConfiguration/maxEvictionBytes``).
    var evictionBudget: Int64 = 0
    /// What the store wrote (filled by the WAL hook on the writer thread) and what of it is persisted.
    let wear = WearTally()  // writer thread only
    var unflushedCounters: [String: Int64] = [:]  // writer thread only
    var warnedUnsyncedClock = false  // writer thread only
    let reserve: SpaceReserve
    var reserveHeld = false  // writer thread only
    /// New events are taken with the database's free pages standing in for the reserve (the file
    /// system is full, the file is not): checked again with every group. Writer thread only.
    var freePagesStandIn = false
    /// The reserve file itself is set aside (not the free pages standing in for it).
    var reserveInPlace: Bool { reserveHeld && !freePagesStandIn }
    /// Where new events are made durable while the database's transaction stays open (nil: off).
    let eventLog: EventLog?  // writer thread only
    /// What the open transaction holds, for readers on other connections.
    let uncommitted = UncommittedView()
    /// The database transaction that stays open across groups while their events are in the log.
    var batchOpen = false  // writer thread only
    var batchSince: DispatchTime?  // writer thread only
    /// When the writer last had work (the open transaction commits after `eventLogIdleMs` without).
    var lastWorkAt = DispatchTime.now()  // writer thread only
    /// Off after a failure inside the open transaction, until `logRetryAt`.
    var logMode = true  // writer thread only
    var logRetryAt: DispatchTime?  // writer thread only
    /// The log holds events the database does not have (putting them in failed): new events wait.
    var logPending = false  // writer thread only
    /// While `logPending` after a failed transaction: its events that were not forwarded yet.
    var replayKeep: Set<Int64>?  // writer thread only
    /// … and the committed events it had deleted (forwarded), to delete again.
    var replayDelete: [Int64] = []  // writer thread only
    let onCommit: @Sendable (_ lastSeq: Int64, _ count: Int64, _ bytes: Int64) -> Void
    private let onFailure: @Sendable (OutboxError) -> Void

    enum Request {
        case append([OutboxRecord], @Sendable ([AppendOutcome]) -> Void)
        case remove([Int64])
        case maintenance
        /// The next chunk of the per-device count of a store opened with a backlog.
        case scanTallies
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
        self.metrics = OutboxMetrics(capacityBytes: configuration.maxBytes)
        self.reserve = SpaceReserve(databasePath: configuration.path, bytes: configuration.reserveBytes)
        self.onCommit = onCommit
        self.onFailure = onFailure
        totals = try Self.readTotals(db)
        totalsWrittenThrough = totals.lastSeq
        tallies = DeviceTallies(lastSeq: totals.lastSeq, empty: totals.count == 0)
        // The log is opened whenever it exists (a crash may have left events in it), even when
        // it is turned off now; then it is emptied into the database and removed.
        let logPath = configuration.path + "-events"
        let logWanted = configuration.eventLogBytes > 0 && configuration.synchronous == .full
        let logExists = FileManager.default.fileExists(atPath: logPath)
        // Never more than an eighth of the free space (a small file system keeps its room for the
        // stores), and not at all below 64 KiB; a log that exists keeps what it has.
        let existing = logExists ? ((try? FileManager.default.attributesOfItem(atPath: logPath))?[.size] as? Int64 ?? 0) : 0
        let free = (try? FileManager.default.attributesOfFileSystem(forPath: (logPath as NSString).deletingLastPathComponent))?[
            .systemFreeSize] as? Int64 ?? Int64.max
        let room = max(existing - EventLog.dataStart, min(configuration.eventLogBytes, free / 8) / 4096 * 4096)
        if logWanted, !logExists, room < 65536 {
            logger.warning(
                "outbox: too little free space for the event log; every group commits to the database",
                metadata: ["path": "\(logPath)", "free": "\(free)", "store.eventLogBytes": "\(configuration.eventLogBytes)"])
        }
        if logWanted && room >= 65536 || logExists {
            do {
                eventLog = try EventLog(path: logPath, capacity: max(room, 4096))
            } catch {
                // Nothing in it to recover (an existing log with records opens at its size).
                logger.warning(
                    "outbox: cannot set up the event log; every group commits to the database",
                    metadata: ["error": "\(error)", "path": "\(logPath)"])
                eventLog = nil
            }
        } else {
            eventLog = nil
        }
        try installWearHook()
        // Set aside before the log is replayed, which otherwise takes the file system for full
        // and gives the log's space back, to write it again with the first group.
        reserveHeld = reserve.hold(roomInFile: freeBytesInFile())
        replayLog()
        if !logWanted, eventLog != nil, !logPending {
            eventLog?.close()
            try? FileManager.default.removeItem(atPath: logPath)
            logMode = false
        }
    }

    /// Depth, bytes and the last sequence number as the database has them. The totals row is
    /// written with every commit that deletes events and at least every `totalsInterval` appends,
    /// so it counts every event up to its `last_seq`; the events appended after it (a short range
    /// scan) are added.
    static func readTotals(_ db: SQLiteConnection) throws -> Totals {
        let stmt = try db.statement("SELECT count, bytes, last_seq FROM totals WHERE id = 1")
        guard try stmt.step() else { throw SQLiteError.corrupt("the totals row is missing") }
        var totals = Totals(count: stmt.int64(0), bytes: stmt.int64(1), lastSeq: stmt.int64(2))
        stmt.reset()
        let since = try db.statement("SELECT count(*), coalesce(sum(size), 0), max(seq) FROM events WHERE seq > ?")
        try since.bind(1, totals.lastSeq)
        if try since.step() {
            totals.count += since.int64(0)
            totals.bytes += since.int64(1)
            if !since.isNull(2) { totals.lastSeq = max(totals.lastSeq, since.int64(2)) }
        }
        since.reset()
        return totals
    }

    var initialTotals: Totals { totals }

    /// Commits and bytes written, counted by the WAL hook (writer thread only).
    final class WearTally {
        var commits: Int64 = 0
        var writtenBytes: Int64 = 0
        let startedAt = DispatchTime.now()
        var persisted = (commits: Int64(0), writtenBytes: Int64(0), seconds: Int64(0))

        /// Counter increments for what is not persisted yet, and the tally they bring it to.
        func unpersisted() -> ([String: Int64], (commits: Int64, writtenBytes: Int64, seconds: Int64)) {
            let seconds = Int64((DispatchTime.now().uptimeNanoseconds - startedAt.uptimeNanoseconds) / 1_000_000_000)
            let now = (commits: commits, writtenBytes: writtenBytes, seconds: seconds)
            let delta = [
                "wear.commits": now.commits - persisted.commits,
                "wear.writtenBytes": now.writtenBytes - persisted.writtenBytes,
                "wear.seconds": now.seconds - persisted.seconds,
            ].filter { $0.value != 0 }
            return (delta, now)
        }
    }

    /// Counts every commit's WAL frames (and the automatic checkpoints', which the hook now runs).
    private func installWearHook() throws {
        let pageSize = try db.scalarInt("PRAGMA page_size") ?? 4096
        let autocheckpoint = try db.scalarInt("PRAGMA wal_autocheckpoint") ?? 1000
        let fsyncPerCommit: Int64 = configuration.synchronous == .full ? 1 : 0
        db.onCommitWritten(autocheckpointPages: Int(autocheckpoint)) { [wear, metrics] write in
            // The WAL frames only: a checkpoint then copies each page changed since the last one
            // once, which SQLite does not count (its frame count would overstate it many times).
            let bytes = Int64(write.frames) * (pageSize + 24)
            wear.commits += 1
            wear.writtenBytes += bytes
            metrics.commits.increment()
            if bytes > 0 { metrics.writtenBytes.increment(by: bytes) }
            // A commit syncs the WAL; a checkpoint syncs the WAL and then the database.
            let fsyncs = fsyncPerCommit + (write.checkpointedPages > 0 ? 2 : 0)
            if fsyncs > 0 { metrics.fsyncs.increment(by: fsyncs) }
        }
    }

    func start() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "outbox-writer"
        thread.start()
        if tallies.isScanning { enqueue(.scanTallies) }
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

    static func seconds(since instant: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - instant.uptimeNanoseconds) / 1e9
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && pendingCounters.isEmpty && !closing {
                // Deferred removals are committed once they have waited `removalDelayMs`, the open
                // transaction once it has been open `eventLogSeconds` or idle `eventLogIdleMs`.
                var remaining = Double.infinity
                if let since = deferredSince {
                    remaining = Double(configuration.removalDelayMs) / 1000 - Self.seconds(since: since)
                }
                if batchOpen, let since = batchSince {
                    remaining = min(remaining, Double(configuration.eventLogSeconds) - Self.seconds(since: since))
                    remaining = min(remaining, Double(configuration.eventLogIdleMs) / 1000 - Self.seconds(since: lastWorkAt))
                }
                guard remaining.isFinite else {
                    condition.wait()
                    continue
                }
                if remaining <= 0 { break }
                _ = condition.wait(until: Date(timeIntervalSinceNow: remaining))
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
        if failure == nil, batchOpen {
            do { try commitBatch() } catch { abandonBatch(error) }
        }
        if failure == nil {
            let removals = unflushedRemovals + deferredRemovals
            if !removals.isEmpty {
                let before = totals
                if (try? applyInTransaction({
                    try removeRows(removals)
                    try writeTotals()
                })) != nil {
                    publishTallyChanges()
                } else {
                    totals = before
                }
            }
            let (wearCounters, wearNow) = wear.unpersisted()
            if !wearCounters.isEmpty, (try? applyInTransaction { try writeCounters(wearCounters) }) != nil {
                wear.persisted = wearNow
            }
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

    func fail(_ error: any Error) {
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
            _ = FileManager.default.createFile(atPath: Outbox.checkMarkerPath(configuration.path), contents: nil)
        }
        logger.critical("outbox failed", metadata: ["error": "\(outboxError)"])
        condition.lock()
        failure = outboxError
        condition.unlock()
        onFailure(outboxError)
    }
}
