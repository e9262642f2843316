import Foundation
import GatewayCore
import SQLite

/// What the writer does when a write fails for lack of space: free space with the removals and
/// dedup entries of events that are gone, give up the disk reserve if need be, and retry.
extension OutboxWriter {
    /// After a write failed for lack of space (or an I/O error): commit the removals on their own
    /// to free space (when the file is full, together with dedup entries of events already gone),
    /// then, if that made room, try the new events once more. Returns the appends' outcomes;
    /// refused ones are `rejectedStoreFull` and counted with the next commit.
    func recover(
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
            giveBackLogSpace()
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
                    evictionBudget = configuration.maxEvictionBytes
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

    /// Bytes in the database file's free pages (reused before the file grows).
    func freeBytesInFile() -> Int64 {
        let pages = (try? db.scalarInt("PRAGMA freelist_count")).flatMap { $0 } ?? 0
        let pageSize = (try? db.scalarInt("PRAGMA page_size")).flatMap { $0 } ?? 4096
        return pages * pageSize
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
    func forgetSeenToMakeRoom(limit: Int) throws -> Int {
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
}
