import GatewayCore
import SQLite

/// The row SQL of the outbox: appending events (with their dedup entries), removing them, and
/// the fair eviction under `store.whenFull: dropOldest`. Called inside a transaction.
extension OutboxWriter {
    func removeRows(_ seqs: [Int64]) throws {
        guard !seqs.isEmpty else { return }
        let stmt = try db.statement("DELETE FROM events WHERE seq = ? RETURNING size, device, event_id, received_at")
        for seq in seqs {
            stmt.reset()
            try stmt.bind(1, seq)
            if try stmt.step() {
                rowsDeleted = true
                totals.count -= 1
                totals.bytes -= stmt.int64(0)
                if totals.deviceBytes != nil { totals.account(stmt.text(1), -stmt.int64(0)) }
                try keepDedupEntry(seq: seq, device: stmt.text(1), eventID: stmt.text(2), receivedAt: stmt.int64(3))
                while try stmt.step() {}
            }
        }
    }

    /// An event is being deleted in this transaction: if its row was its only dedup entry, the
    /// entry moves to `seen` in the same transaction, so the id is recognised for
    /// `dedupRetentionSeconds` after it is gone.
    func keepDedupEntry(seq: Int64, device: String, eventID: String, receivedAt: Int64) throws {
        guard seq > totals.seenThrough else { return }
        let markSeen = try db.statement("INSERT OR IGNORE INTO seen(device, event_id, seen_at) VALUES (?, ?, ?)")
        try markSeen.bind(1, device)
        try markSeen.bind(2, eventID)
        try markSeen.bind(3, receivedAt)
        try markSeen.step()
    }

    /// Writes the dedup entries of every waiting event after `seenThrough` to `seen`, in one go.
    func flushUnseen() throws {
        let flush = try db.statement(
            "INSERT OR IGNORE INTO seen(device, event_id, seen_at) SELECT device, event_id, received_at FROM events WHERE seq > ? ORDER BY seq")
        try flush.bind(1, totals.seenThrough)
        try flush.step()
        totals.seenThrough = totals.lastSeq
        rowsDeleted = true  // the totals row carries seen_through: write it with this transaction
    }

    /// After a commit: forgets the in-memory entries that `seen` now holds.
    func pruneUnseen() {
        guard unseen.count >= configuration.maxBatch else { return }
        let through = totals.seenThrough
        unseen = unseen.filter { $0.value > through }
    }

    /// Whether `(device, eventId)` is stored: a waiting event after `seenThrough` (checked against
    /// its row), or an entry in `seen`.
    private func isStored(_ key: DedupKey) throws -> Bool {
        if let seq = unseen[key], seq > totals.seenThrough {
            let row = try db.statement("SELECT device, event_id FROM events WHERE seq = ?")
            try row.bind(1, seq)
            let matches = try row.step() && row.text(0) == key.device && row.text(1) == key.eventID
            row.reset()
            if matches { return true }
        }
        let seen = try db.statement("SELECT 1 FROM seen WHERE device = ? AND event_id = ?")
        try seen.bind(1, key.device)
        try seen.bind(2, key.eventID)
        let found = try seen.step()
        seen.reset()
        return found
    }

    func appendRows(_ records: [OutboxRecord], counters: inout [String: Int64]) throws -> [AppendOutcome] {
        let insert = try db.statement(
            "INSERT INTO events(seq, device, event_id, key, received_at, size, payload, topic) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        var outcomes: [AppendOutcome] = []
        outcomes.reserveCapacity(records.count)
        for record in records {
            let key = DedupKey(device: record.device, eventID: record.eventID)
            if try isStored(key) {
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
                    // Not stored, so not remembered: it can be stored once there is room.
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
            if let topic = record.topic { try insert.bind(8, topic) } else { try insert.bindNull(8) }
            try insert.step()
            unseen[key] = seq
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
        let delete = try db.statement("DELETE FROM events WHERE seq = ? RETURNING device, event_id, received_at")
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
                if try delete.step() {
                    try keepDedupEntry(seq: seq, device: delete.text(0), eventID: delete.text(1), receivedAt: delete.int64(2))
                    while try delete.step() {}
                }
                rowsDeleted = true
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

    func deleteSeen(_ ids: [Int64]) throws {
        let delete = try db.statement("DELETE FROM seen WHERE id = ?")
        for id in ids {
            delete.reset()
            try delete.bind(1, id)
            try delete.step()
        }
    }
}
