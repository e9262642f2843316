import Foundation
import GatewayCore
import SQLite

/// What the writer does when a write fails for lack of space: free space with the removals and
/// dedup entries of events that are gone, give up the disk reserve if need be, and retry.
extension OutboxWriter {
    /// After a write failed for lack of space (or an I/O error): commit the removals on their own
    /// to free space (when the file is full, together with dedup entries of events already gone),
    /// then, if that made room, try the new events once more, and else store what fits a few at a
    /// time. Returns the appends' outcomes; refused ones are `rejectedStoreFull` and counted with
    /// the next commit.
    func recover(
        from error: SQLiteError, removals: [Int64], appends: [[OutboxRecord]], incomingBytes: Int64, counters: [String: Int64]
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
                // space can be set aside again, or the file's free pages stand in for it.
                releaseReserve()
                // The failed transaction's WAL frames hold the disk's last free space.
                _ = try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                dropLog.warning(
                    key: "reserve-released", count: 1,
                    "file system full: released the outbox's reserve to keep removing forwarded events; new events are refused until it can be set aside again (or the database file's free pages can take them)",
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
        if appendCount > 0, reserveHeld || mayTakeNewEvents(incoming: incomingBytes) {
            reserveHeld = true
            if forgotten > 0 || !removals.isEmpty {
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
            // Too big for the space left as one transaction (its WAL frames need room beside the
            // file's free pages): store what fits, a few events a commit. Devices resend a whole
            // window at once, so refusing the group whole would refuse it again and again.
            let (outcomes, refusedCount) = appendInSmallSteps(appends)
            if refusedCount < appendCount {
                if refusedCount > 0 { addCounters([Self.storeFullCounter: Int64(refusedCount)]) }
                return outcomes
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

    /// Whether new events may be taken, when the reserve is not held (or the file's free pages
    /// stood in for it): the reserve set aside now, or else the free pages standing in.
    func mayTakeNewEvents(incoming: Int64) -> Bool {
        let room = freeBytesInFile()
        freePagesStandIn = false
        if reserve.hold(roomInFile: room) { return true }
        if !batchOpen, (try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")) != nil {
            // A write that failed for lack of space leaves the WAL file as long as it got: give
            // that space back and look again (no commit comes to checkpoint it otherwise).
            if reserve.hold(roomInFile: room) { return true }
        }
        freePagesStandIn = reserve.freePagesCanStandIn(roomInFile: room, incoming: incoming)
        return freePagesStandIn
    }

    /// Gives the reserve back to the file system; new events wait for ``mayTakeNewEvents(incoming:)``.
    func releaseReserve() {
        reserve.release()
        reserveHeld = false
        freePagesStandIn = false
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
    func removeInSmallSteps(_ removals: [Int64]) -> Bool {
        var start = 0
        while start < removals.count {
            let step = Array(removals[start..<min(start + Self.smallStep, removals.count)])
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

    /// Appends a few events a transaction, checkpointing after each so the next finds the WAL's
    /// space again; stops at the first step that fails (what follows is refused, so a device's
    /// stored events stay in its order). Returns each request's outcomes and how many events were
    /// refused for want of space (not yet counted; refusals under `rejectNew` are).
    private func appendInSmallSteps(_ appends: [[OutboxRecord]]) -> (outcomes: [[AppendOutcome]], refused: Int) {
        var outcomes = appends.map { Array(repeating: AppendOutcome.rejectedStoreFull, count: $0.count) }
        var refused = appends.reduce(0) { $0 + $1.count }
        evictionBudget = configuration.maxEvictionBytes
        for (request, records) in appends.enumerated() {
            var start = 0
            while start < records.count {
                // At least one event, else up to 16 KB of them (a few pages of WAL).
                var end = start + 1
                var bytes = records[start].accountedSize
                while end < records.count, bytes + records[end].accountedSize <= Self.smallStepBytes {
                    bytes += records[end].accountedSize
                    end += 1
                }
                let before = totals
                var stepOutcomes: [AppendOutcome] = []
                do {
                    try applyInTransaction {
                        var stepCounters: [String: Int64] = [:]
                        stepOutcomes = try appendRows(Array(records[start..<end]), counters: &stepCounters)
                        try writeCounters(stepCounters)
                        try writeTotals()
                    }
                } catch {
                    totals = before
                    if let failure = error as? SQLiteError, failure.isCorruption { fail(failure) }
                    return (outcomes, refused)
                }
                outcomes[request].replaceSubrange(start..<end, with: stepOutcomes)
                refused -= end - start
                // The next step writes the WAL from its start again, in the file's space (which a
                // truncation would hand to the file system, where there may be none left).
                if !batchOpen { _ = try? db.execute("PRAGMA wal_checkpoint(RESTART)") }
                start = end
            }
        }
        return (outcomes, refused)
    }

    /// Removals per transaction when the disk is too full for a whole group.
    static let smallStep = 16
    /// Bytes of new events per transaction then (at least one event).
    static let smallStepBytes: Int64 = 16 * 1024

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
