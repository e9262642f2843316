import Foundation
import GatewayCore
import Logging
import Platform
import SQLite

/// Upkeep on the writer thread: expiry by `store.maxAgeSeconds` and forgetting dedup entries,
/// a bounded round at a time.
extension OutboxWriter {
    /// One round of upkeep: expire up to 500 old events, forget up to 2000 dedup entries. Returns
    /// whether more is left, so the loop can queue another round behind waiting appends instead
    /// of holding the writer for the whole backlog.
    ///
    /// Ages come from the wall clock, which on a hub without a real-time clock can be days behind
    /// until NTP syncs; a jump forward would make fresh events look old. So nothing is expired or
    /// forgotten by age while the kernel reports the clock unsynchronised.
    func runMaintenanceRound() -> Bool {
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
            // What the store wrote since the last round, for `outbox stats` (one counters page).
            let (wearCounters, wearNow) = wear.unpersisted()
            do {
                try applyInTransaction {
                    try writeCounters(wearCounters)
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
            wear.persisted = wearNow
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
            totals.tallyChanges.append(.deleted(seq: victim.seq, device: victim.device, size: victim.size))
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
