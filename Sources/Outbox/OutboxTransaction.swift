import Foundation
import GatewayCore
import Platform
import SQLite

/// One group commit on the writer thread: the queued removals, appends and counters applied in
/// one transaction, the totals kept with it and rolled back with it.
extension OutboxWriter {
    struct Totals {
        var count: Int64
        var bytes: Int64
        var lastSeq: Int64
        /// Bytes waiting per device, for fair eviction under `dropOldest`. Read from the table the
        /// first time the store is full (never at start, which must stay fast with a large
        /// backlog), then kept with every change; rolled back with the rest of the totals.
        var deviceBytes: [String: Int64]?
        /// Inserts and deletions of this transaction, for ``DeviceTallies`` once it commits
        /// (a rollback restores the totals, and these with them).
        var tallyChanges: [DeviceTallies.Change] = []
        /// Counter increments written in this group of the event log's open transaction, for
        /// readers until it commits.
        var counterChanges: [String: Int64] = [:]

        mutating func account(_ device: String, _ delta: Int64) {
            guard deviceBytes != nil else { return }
            let value = (deviceBytes?[device] ?? 0) + delta
            deviceBytes?[device] = value > 0 ? value : nil
        }
    }

    func process(_ work: [Request], counters: [String: Int64]) {
        if !work.isEmpty || !counters.isEmpty { lastWorkAt = .now() }
        var appends: [([OutboxRecord], @Sendable ([AppendOutcome]) -> Void)] = []
        var removals = unflushedRemovals
        unflushedRemovals.removeAll()
        // Counters that could not be written last time go with this transaction.
        var counters = counters
        for (name, value) in unflushedCounters { counters[name, default: 0] += value }
        unflushedCounters.removeAll()
        var maintenance = false
        var scanTallies = false
        // An empty append is `waitForQueuedWrites()`: it wants the removals committed too.
        var flushRequested = false
        var incomingBytes: Int64 = 0
        for request in work {
            switch request {
            case .append(let records, let completion):
                appends.append((records, completion))
                if records.isEmpty { flushRequested = true }
                for record in records { incomingBytes += record.accountedSize }
            case .remove(let seqs):
                if deferredSince == nil, !seqs.isEmpty { deferredSince = .now() }
                deferredRemovals.append(contentsOf: seqs)
            case .maintenance: maintenance = true
            case .scanTallies: scanTallies = true
            }
        }
        // A failure outside a group (upkeep) may have rolled back the open transaction.
        if batchOpen, db.isAutocommit { abandonBatch(SQLiteError(code: 1, message: "the open transaction was rolled back")) }
        if logPending {
            removals = removeWaiting(removals)
            deferredRemovals = removeWaiting(deferredRemovals)
            replayLog()
        }
        // New events are taken only while the disk reserve is held (see SpaceReserve).
        if !reserveInPlace {
            reserveHeld = mayTakeNewEvents(incoming: incomingBytes)
        }
        giveBackLogSpace()
        // With the event log, this group is a savepoint of the open transaction and its events
        // go to the log (OutboxBatch.swift); not while the file system is full.
        let logging = beginBatchIfLogging(accepting: reserveInPlace)
        if batchOpen, !logging {
            do { try commitBatch() } catch { abandonBatch(error) }
        }
        let accepting = reserveHeld && !logPending
        // Removals wait in memory until they have waited removalDelayMs or fill a batch, unless
        // the room they free is needed now or someone waits for them. In the open transaction
        // they cost no commit of their own: they go at once.
        if logging {
            removals.append(contentsOf: deferredRemovals)
            deferredRemovals.removeAll()
            deferredSince = nil
        } else if let since = deferredSince {
            let waited = Double(DispatchTime.now().uptimeNanoseconds - since.uptimeNanoseconds) / 1e9
            // Maintenance too: expiry must not count a forwarded event as dropped.
            if flushRequested || maintenance || !accepting || deferredRemovals.count >= configuration.maxBatch
                || waited >= Double(configuration.removalDelayMs) / 1000
                || totals.bytes + incomingBytes > configuration.maxBytes {
                removals.append(contentsOf: deferredRemovals)
                deferredRemovals.removeAll()
                deferredSince = nil
            }
        }
        if !reserveInPlace, configuration.reserveBytes > 0, !batchOpen, removals.count > Self.smallStep {
            // The file system is (nearly) full and the reserve not held: one large transaction
            // would fill the last free space with WAL frames, and then even the checkpoint that
            // gives them back could not grow the file (seen on a 1 MiB tmpfs). A few at a time.
            _ = removeInSmallSteps(removals)
            removals = []
        }
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
                rowsDeleted = false
                evictionBudget = configuration.maxEvictionBytes
                try removeRows(removals)
                if accepting {
                    for (records, _) in appends {
                        outcomes.append(try appendRows(records, counters: &counterUpdates))
                    }
                } else {
                    if appendCount > 0 { counterUpdates[Self.storeFullCounter, default: 0] += Int64(appendCount) }
                    // One outcome list per request, also for an empty one (waitForQueuedWrites).
                    outcomes = appends.map { Array(repeating: .rejectedStoreFull, count: $0.0.count) }
                }
                try writeCounters(counterUpdates)
                // The totals row is not rewritten by every commit (one page less per commit): only
                // with a deletion, which the start could not see, and every `totalsInterval` appends,
                // which bounds what the start counts from the table.
                if rowsDeleted || totals.lastSeq - totalsWrittenThrough >= Self.totalsInterval {
                    try writeTotals()
                }
            }
            if !accepting, appendCount > 0 {
                dropLog.warning(
                    key: "reserve", count: Int64(appendCount),
                    "file system nearly full: new events are refused with 'store full' until store.reserveBytes can be set aside",
                    metadata: ["store.reserveBytes": "\(configuration.reserveBytes)", "reserve": "\(reserve.path)"])
            }
            if logging {
                try logGroup(appends.map(\.0), outcomes: outcomes, flush: flushRequested)
            }
        } catch where logging && !((error as? SQLiteError)?.isCorruption ?? false) {
            // This group is not durable (its savepoint, or the whole transaction, was rolled back, or
            // the log could not be written); the transaction's earlier groups are in the log. Put
            // those into the database and do this group again the plain way, which knows what to do
            // about a full disk.
            totals = before
            abandonBatch(error)
            unflushedRemovals = removals + unflushedRemovals
            unflushedCounters = counters
            process(work, counters: [:])
            return
        } catch let error as SQLiteError where !error.isCorruption {
            totals = before
            // Out of space (or an I/O error): the removals waiting in memory free space now.
            removals.append(contentsOf: deferredRemovals)
            deferredRemovals.removeAll()
            deferredSince = nil
            outcomes = recover(
                from: error, removals: removals, appends: appends.map(\.0), incomingBytes: incomingBytes, counters: counters)
        } catch {
            totals = before
            fail(error)
            outcomes = appends.map { Array(repeating: .rejectedStoreFull, count: $0.0.count) }
        } }

        publishTallyChanges()
        if logPending {
            // What readers count: the database and the log's events that wait for it.
            let view = uncommitted.snapshot()
            let bytes = view.inserted.reduce(Int64(0)) { $0 + $1.accountedSize }
            uncommitted.showWaiting(view.inserted, count: totals.count + Int64(view.inserted.count), bytes: totals.bytes + bytes)
        }
        // The write is finished: stop the stall clock before anyone hears of it.
        condition.lock()
        pendingSince = queue.isEmpty ? nil : .now
        condition.unlock()
        // The depth first, then the producers: whoever hears "stored" (a device's ack) finds the
        // event counted.
        onCommit(totals.lastSeq, totals.count, totals.bytes)
        for (index, (_, completion)) in appends.enumerated() {
            completion(outcomes[index])
        }
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
        publishTallyChanges()
        if scanTallies, failure == nil, scanTallyChunk() {
            condition.lock()
            if !closing { queue.append(.scanTallies) }
            condition.unlock()
        }
    }

    /// Hands the committed inserts and deletions to the per-device tallies.
    func publishTallyChanges() {
        if batchOpen, !totals.counterChanges.isEmpty {
            uncommitted.publish(counters: totals.counterChanges)
        }
        totals.counterChanges.removeAll()
        guard !totals.tallyChanges.isEmpty else { return }
        if batchOpen {
            // Deletions in the open transaction (removals, eviction, expiry): readers on other
            // connections still see those rows and must leave them out.
            var deleted: [Int64] = []
            for change in totals.tallyChanges {
                if case .deleted(let seq, _, _) = change { deleted.append(seq) }
            }
            uncommitted.publish(inserted: [], deleted: deleted, count: totals.count, bytes: totals.bytes)
        }
        tallies.apply(totals.tallyChanges)
        totals.tallyChanges.removeAll(keepingCapacity: true)
    }

    /// Counts the next rows of a store opened with a backlog into the tallies; whether more is left.
    func scanTallyChunk() -> Bool {
        guard let range = tallies.scanRange else { return false }
        do {
            let stmt = try db.statement(
                "SELECT seq, device, size, received_at FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?")
            try stmt.bind(1, range.next)
            try stmt.bind(2, range.end)
            try stmt.bind(3, Int64(Self.tallyScanChunk))
            var rows: [DeviceTallies.Row] = []
            rows.reserveCapacity(Self.tallyScanChunk)
            while try stmt.step() {
                rows.append(DeviceTallies.Row(seq: stmt.int64(0), device: stmt.text(1), size: stmt.int64(2), receivedAt: stmt.int64(3)))
            }
            stmt.reset()
            let through = rows.count == Self.tallyScanChunk ? rows[rows.count - 1].seq : range.end
            tallies.scanChunk(rows, through: through)
            // The scan filled the connection's page cache with pages the writer will not need again
            // (the old end of the table): give them back rather than keep them as private memory.
            // And the heap hands the freed pages to the kernel now, not at the next periodic trim.
            if !tallies.isScanning {
                try db.execute("PRAGMA shrink_memory")
                _ = HeapMemory.trim()
            }
        } catch {
            // Readers keep using the query; the scan is tried again with the next round.
            logger.warning("outbox: counting the stored events per device failed", metadata: ["error": "\(error)"])
        }
        return tallies.isScanning
    }

    /// Rows counted per round of the scan of a store opened with a backlog.
    static let tallyScanChunk = 20_000

    /// Most events appended between two writes of the totals row.
    static let totalsInterval: Int64 = 1000

    static let storeFullCounter = "reject.\(RejectReason.storeFull.rawValue)"

    /// Runs `body` in a transaction of its own, or, while the event log's transaction is open, in
    /// a savepoint of it (rolled back alone when `body` fails, unless the failure rolled back the
    /// whole transaction, which the caller sees as `batchOpen` with no transaction left).
    func applyInTransaction(_ body: () throws -> Void) throws {
        if batchOpen {
            try db.execute("SAVEPOINT grp")
            do {
                try body()
                try db.execute("RELEASE grp")
            } catch {
                if !db.isAutocommit {
                    try? db.execute("ROLLBACK TO grp")
                    try? db.execute("RELEASE grp")
                }
                throw error
            }
            return
        }
        try db.execute("BEGIN IMMEDIATE")
        do {
            try body()
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }

    func writeCounters(_ counters: [String: Int64]) throws {
        guard !counters.isEmpty else { return }
        if batchOpen {
            for (name, value) in counters where value != 0 { totals.counterChanges[name, default: 0] += value }
        }
        let stmt = try db.statement(
            "INSERT INTO counters(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + excluded.value")
        for (name, value) in counters where value != 0 {
            stmt.reset()
            try stmt.bind(1, name)
            try stmt.bind(2, value)
            try stmt.step()
        }
    }

    func writeTotals() throws {
        let stmt = try db.statement("UPDATE totals SET count = ?, bytes = ?, last_seq = ? WHERE id = 1")
        try stmt.bind(1, totals.count)
        try stmt.bind(2, totals.bytes)
        try stmt.bind(3, totals.lastSeq)
        try stmt.step()
        totalsWrittenThrough = totals.lastSeq
    }
}
