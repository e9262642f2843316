import Foundation
import Platform
import SQLite

/// The event log's side of the writer: new events made durable in the log while the database's
/// transaction stays open across groups (each group a savepoint in it), that transaction's commit,
/// and what happens when it fails or a crash interrupted it.
///
/// Why: a commit of the database writes every page the group touched as a WAL frame of 4,120
/// bytes (the event's leaf, the `seen` table's leaf, one `seen_by_event` leaf per device) and
/// the kernel counts two 4 KiB pages per frame. An event alone in its commit cost 15–20 KB of
/// writes. In the log it costs its own bytes (one page per `fdatasync`, shared by a group), and
/// the database writes each page once per `store.eventLogSeconds` whatever the events did to it.
extension OutboxWriter {
    /// Opens the long transaction if the log is to be used for this group.
    func beginBatchIfLogging(accepting: Bool) -> Bool {
        guard let eventLog, accepting, !logPending else { return false }
        if eventLog.capacity == 0 {
            // Given back when the disk filled: taken again once the reserve is held and there is room.
            let free = (try? FileManager.default.attributesOfFileSystem(forPath: (eventLog.path as NSString).deletingLastPathComponent))?[
                .systemFreeSize] as? Int64 ?? 0
            let room = min(configuration.eventLogBytes, free / 8) / 4096 * 4096
            guard reserveHeld, room >= 65536, (try? eventLog.grow(to: room)) != nil else { return false }
            logger.notice("outbox: the event log has its space again", metadata: ["bytes": "\(room)"])
        }
        if !logMode {
            guard let retry = logRetryAt, DispatchTime.now() >= retry else { return false }
            logMode = true
            logRetryAt = nil
            logger.info("outbox: using the event log again", metadata: ["path": "\(eventLog.path)"])
        }
        if batchOpen { return true }
        do {
            try db.execute("BEGIN IMMEDIATE")
        } catch {
            return false
        }
        batchOpen = true
        batchSince = .now()
        return true
    }

    /// After a group applied in the open transaction: writes its stored events to the log (or, when
    /// they do not fit, commits the transaction with them), shows the group to readers, and
    /// commits when the transaction is due.
    func logGroup(_ appends: [[OutboxRecord]], outcomes: [[AppendOutcome]], flush: Bool) throws {
        guard let eventLog, batchOpen else { return }
        var entries: [(seq: Int64, record: OutboxRecord)] = []
        for (records, results) in zip(appends, outcomes) {
            for (record, result) in zip(records, results) {
                if case .stored(let seq) = result { entries.append((seq, record)) }
            }
        }
        if !entries.isEmpty {
            let size = EventLog.size(of: entries)
            if eventLog.fits(size), eventLog.usedBytes + size <= batchByteLimit {
                let written = try eventLog.append(entries)
                wear.commits += 1
                wear.writtenBytes += written
                metrics.commits.increment()
                metrics.fsyncs.increment()
                metrics.writtenBytes.increment(by: written)
            } else {
                // The log is full: the transaction's commit makes these durable with the rest.
                try commitBatch()
                return
            }
        }
        uncommitted.publish(
            inserted: entries.map {
                StoredEvent(
                    seq: $0.seq, device: $0.record.device, eventID: $0.record.eventID, key: $0.record.key,
                    receivedAt: $0.record.receivedAt, payload: $0.record.payload, topic: $0.record.topic)
            },
            deleted: [], count: totals.count, bytes: totals.bytes)
        if flush || batchDue {
            try commitBatch()
        }
    }

    /// Open for `store.eventLogSeconds`, idle for `store.eventLogIdleMs`, or holding more deletions than readers should filter.
    var batchDue: Bool {
        guard batchOpen else { return false }
        if let since = batchSince, Self.seconds(since: since) >= Double(configuration.eventLogSeconds) { return true }
        // Quiet for a moment: commit, so the database file is current for whoever reads it
        // directly (a steady stream keeps the transaction open; a pause closes it).
        if Self.seconds(since: lastWorkAt) * 1000 >= Double(configuration.eventLogIdleMs) { return true }
        return uncommitted.hiddenCount > Self.maxHiddenDeletions
    }

    /// Most bytes of records in the log before the transaction commits: the log's size, or an
    /// eighth of the database's cap when that is smaller (what a failed transaction puts back in one
    /// commit must fit beside what the store holds).
    var batchByteLimit: Int64 {
        min(eventLog?.capacity ?? 0, configuration.effectiveMaxFileBytes / 8)
    }

    /// Deleted committed rows the readers filter out before the transaction must commit.
    static let maxHiddenDeletions = 20_000

    /// The file system is (nearly) full and the reserve is not held (the database's free pages
    /// may stand in for it, but the log is not used then): the log's pre-written space
    /// goes back to the database. All of it when the log is empty; when its events wait to go into
    /// the database (`logPending`: that needs room too), the part after them. Without this a full
    /// disk could hold the log's space while the database needs it to take the log's events or
    /// remove forwarded ones, and neither would ever happen (seen in `scripts/faults`, disk-full on
    /// a 1 MiB tmpfs).
    @discardableResult
    func giveBackLogSpace() -> Bool {
        guard !reserveInPlace, configuration.reserveBytes > 0, !batchOpen, let eventLog, eventLog.capacity > 0 else { return false }
        if eventLog.isEmpty {
            guard (try? eventLog.shrink()) != nil else { return false }
            logger.notice("outbox: gave the event log's space back (file system nearly full)", metadata: ["path": "\(eventLog.path)"])
            return true
        }
        // No transaction is open: the records wait to go into the database.
        guard (try? eventLog.trimUnused()) == true else { return false }
        logger.notice(
            "outbox: gave the event log's unused space back (file system full; its events wait to go into the database)",
            metadata: ["path": "\(eventLog.path)", "bytes": "\(eventLog.capacity)"])
        return true
    }

    /// Commits the open transaction (durable with `synchronous: full`), then empties the log.
    func commitBatch() throws {
        guard batchOpen else { return }
        try db.execute("COMMIT")
        batchOpen = false
        batchSince = nil
        uncommitted.clear()
        do {
            try eventLog?.reset()
        } catch {
            // Its records are all in the database now; a log that cannot be written is not used.
            logMode = false
            logRetryAt = .now() + .seconds(60)
            logger.error("outbox: the event log cannot be written; committing every group instead", metadata: ["error": "\(error)"])
        }
    }

    /// The open transaction failed (a full disk, an I/O error) or its commit did: what it held is
    /// rolled back, the events it took are put into the database from the log, one plain commit,
    /// and the log is left alone for a minute.
    func abandonBatch(_ error: any Error) {
        if !db.isAutocommit { try? db.execute("ROLLBACK") }
        batchOpen = false
        batchSince = nil
        // The transaction's events that readers still saw: the others were forwarded (or evicted)
        // meanwhile and go back only as dedup entries.
        let view = uncommitted.snapshot()
        let stillPending = Set(view.inserted.map(\.seq))
        // Committed events it deleted (forwarded, evicted, expired) are deleted again with the
        // events put back: the forwarder has passed them and would not send them again soon.
        replayDelete = view.hidden
        uncommitted.clear()
        logMode = false
        logRetryAt = .now() + .seconds(60)
        logger.error(
            "outbox: the open transaction failed; its events go from the event log into the database and groups commit on their own for a minute",
            metadata: ["error": "\(error)"])
        do {
            totals = try Self.readTotals(db)
        } catch {
            fail(error)
            return
        }
        totalsWrittenThrough = totals.lastSeq
        tallies.restart(lastSeq: totals.lastSeq, empty: totals.count == 0)
        condition.lock()
        if !closing, tallies.isScanning { queue.append(.scanTallies) }
        condition.unlock()
        replayLog(stillPending: stillPending)
    }

    /// While the log's events wait to go into the database (`logPending`): removals of them (they
    /// were forwarded) only take them out of what waits; the rest is for the database. Returns the rest.
    func removeWaiting(_ seqs: [Int64]) -> [Int64] {
        guard logPending, var keep = replayKeep, !seqs.isEmpty else { return seqs }
        var rest: [Int64] = []
        var gone: [Int64] = []
        for seq in seqs {
            if keep.remove(seq) != nil { gone.append(seq) } else { rest.append(seq) }
        }
        replayKeep = keep
        if !gone.isEmpty {
            let view = uncommitted.snapshot()
            let goneSet = Set(gone)
            let waiting = view.inserted.filter { !goneSet.contains($0.seq) }
            let bytes = view.inserted.filter { goneSet.contains($0.seq) }.reduce(Int64(0)) { $0 + $1.accountedSize }
            uncommitted.showWaiting(waiting, count: (view.depth?.count ?? 0) - Int64(gone.count), bytes: (view.depth?.bytes ?? 0) - bytes)
        }
        return rest
    }

    /// Puts the log's events into the database (those it has are recognised by their dedup entry
    /// and skipped) in one commit, then empties the log. When that fails, new events are refused
    /// until it succeeds (tried again with every group): the log's events are acked and must not
    /// be lost or overtaken.
    ///
    /// - Parameter stillPending: after a failed transaction, its events not forwarded yet; the
    ///   others get only their dedup entry back. Nil (at the start): every event goes back.
    func replayLog(stillPending: Set<Int64>? = nil) {
        guard let eventLog else { return }
        let stillPending = stillPending ?? replayKeep
        do {
            let all = try eventLog.recover()
            let entries = stillPending.map { pending in all.filter { pending.contains($0.seq) } } ?? all
            let gone = stillPending.map { pending in all.filter { !pending.contains($0.seq) } } ?? []
            if !all.isEmpty || !replayDelete.isEmpty {
                let before = totals
                var restored = 0
                let putBack = {
                    var ignored: [String: Int64] = [:]
                    let outcomes = try self.appendRows(entries.map(\.record), counters: &ignored, replaying: entries.map(\.seq))
                    restored = outcomes.filter { if case .stored = $0 { true } else { false } }.count
                    let markSeen = try self.db.statement("INSERT OR IGNORE INTO seen(device, event_id, seen_at) VALUES (?, ?, ?)")
                    for (_, record) in gone {
                        markSeen.reset()
                        try markSeen.bind(1, record.device)
                        try markSeen.bind(2, record.eventID)
                        try markSeen.bind(3, record.receivedAt)
                        try markSeen.step()
                    }
                    try self.removeRows(self.replayDelete)
                    // Sequence numbers the log handed out are never handed out again, also those of
                    // events that are gone: the forwarder has read past them, and a new event under
                    // one of them would wait unseen behind its cursor until the next connection.
                    self.totals.lastSeq = max(self.totals.lastSeq, all.map(\.seq).max() ?? 0)
                    try self.writeTotals()
                }
                do {
                    try applyInTransaction(putBack)
                } catch let error as SQLiteError where error.isFull {
                    // The file (or the file system) is full: forget dedup entries of events that are
                    // gone (as a plain append would), give up the disk reserve (what it is for), hand
                    // the WAL's space back, and try once more.
                    totals = before
                    var forgotten = 0
                    try? applyInTransaction { forgotten = try self.forgetSeenToMakeRoom(limit: 5000) }
                    let released = reserveHeld && configuration.reserveBytes > 0
                    if released { releaseReserve() }
                    let trimmed = giveBackLogSpace()
                    _ = try? db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    guard forgotten > 0 || released || trimmed else { throw error }
                    do {
                        try applyInTransaction(putBack)
                    } catch {
                        totals = before
                        throw error
                    }
                } catch {
                    totals = before
                    throw error
                }
                publishTallyChanges()
                if restored > 0 {
                    logger.notice(
                        "outbox: put events from the event log into the database (after a crash or a failed commit)",
                        metadata: ["events": "\(restored)", "path": "\(eventLog.path)"])
                }
            }
            try eventLog.reset()
            replayKeep = nil
            replayDelete = []
            if !reserveHeld, configuration.reserveBytes > 0, eventLog.capacity > 0 {
                // The disk is full and the reserve given up: the log's pre-written space goes too,
                // so the database has the room the store had without a log.
                do {
                    try eventLog.shrink()
                    logger.notice("outbox: gave the event log's space back (file system full)", metadata: ["path": "\(eventLog.path)"])
                } catch {
                    logger.warning("outbox: cannot give the event log's space back", metadata: ["error": "\(error)"])
                }
            }
            if logPending {
                logPending = false
                uncommitted.clear()
                logger.notice("outbox: the event log is empty again; taking new events")
            }
        } catch {
            if !logPending {
                logger.error(
                    "outbox: cannot put the event log's events into the database; new events are refused until it can",
                    metadata: ["error": "\(error)", "path": "\(eventLog.path)"])
            }
            logPending = true
            // The events waiting in the log stay forwardable (readers see them as before); one
            // forwarded meanwhile goes back only as a dedup entry, which makes the next try smaller.
            let all = (try? eventLog.recover()) ?? []
            let waiting = all.filter { stillPending?.contains($0.seq) ?? true }
            replayKeep = Set(waiting.map(\.seq))
            uncommitted.showWaiting(
                waiting.map {
                    StoredEvent(
                        seq: $0.seq, device: $0.record.device, eventID: $0.record.eventID, key: $0.record.key,
                        receivedAt: $0.record.receivedAt, payload: $0.record.payload, topic: $0.record.topic)
                },
                count: totals.count + Int64(waiting.count), bytes: totals.bytes + waiting.reduce(0) { $0 + $1.record.accountedSize })
        }
    }
}
