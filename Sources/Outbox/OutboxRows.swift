import GatewayCore
import SQLite

/// The row SQL of the outbox: appending events (with their dedup entries), removing them, and
/// the fair eviction under `store.whenFull: dropOldest`. Called inside a transaction.
extension OutboxWriter {
    func removeRows(_ seqs: [Int64]) throws {
        guard !seqs.isEmpty else { return }
        let stmt = try db.statement("DELETE FROM events WHERE seq = ? RETURNING size, device")
        for seq in seqs {
            stmt.reset()
            try stmt.bind(1, seq)
            if try stmt.step() {
                rowsDeleted = true
                totals.count -= 1
                totals.bytes -= stmt.int64(0)
                if totals.deviceBytes != nil { totals.account(stmt.text(1), -stmt.int64(0)) }
                totals.tallyChanges.append(.deleted(seq: seq, device: stmt.text(1), size: stmt.int64(0)))
                while try stmt.step() {}
            }
        }
    }

    /// - Parameter replaying: the sequence numbers the records were stored with in the event log;
    ///   they are acked, so no cap refuses them.
    func appendRows(_ records: [OutboxRecord], counters: inout [String: Int64], replaying: [Int64]? = nil) throws -> [AppendOutcome] {
        let markSeen = try db.statement("INSERT OR IGNORE INTO seen(device, event_id, seen_at) VALUES (?, ?, ?)")
        let insert = try db.statement(
            "INSERT INTO events(seq, device, event_id, key, received_at, size, payload, topic) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        var outcomes: [AppendOutcome] = []
        outcomes.reserveCapacity(records.count)
        var overCap: Int64 = 0
        for (index, record) in records.enumerated() {
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
            if replaying == nil, totals.bytes + size > configuration.maxBytes {
                let fits: Bool
                switch configuration.whenFull {
                case .rejectNew:
                    fits = false
                case .dropOldest:
                    let evicted = try evictOldest(toFit: size, counters: &counters)
                    // Past the group's budget an event that would fit an emptier store is taken over
                    // the cap; the groups after this one go on evicting until the store is under it.
                    fits = evicted || (size <= configuration.maxBytes && evictionBudget <= 0)
                    if !evicted, fits { overCap += 1 }
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
            let seq = max(replaying?[index] ?? 0, totals.lastSeq + 1)
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
            totals.lastSeq = seq
            totals.count += 1
            totals.bytes += size
            totals.account(record.device, size)
            totals.tallyChanges.append(.inserted(seq: seq, device: record.device, size: size, receivedAt: record.receivedAt))
            outcomes.append(.stored(seq: seq))
        }
        if overCap > 0 {
            dropLog.warning(
                key: "over-cap", count: overCap,
                "outbox over store.maxBytes: new events are taken while each commit evicts up to store.maxEvictionBytes of the oldest",
                metadata: ["store.maxBytes": "\(configuration.maxBytes)", "store.maxEvictionBytes": "\(configuration.maxEvictionBytes)", "outbox.bytes": "\(totals.bytes)"])
        }
        return outcomes
    }

    /// Drops events until `size` more bytes fit; `false` if even an empty store can't hold it.
    /// Fair per device: the device holding the most bytes loses its oldest events first, so one
    /// noisy device evicts its own backlog, not every other device's undelivered events.
    private func evictOldest(toFit size: Int64, counters: inout [String: Int64], countFromTable: Bool = false) throws -> Bool {
        guard size <= configuration.maxBytes, evictionBudget > 0 else { return false }
        // Under dropOldest a burst larger than the whole cap can evict events appended earlier in
        // this same transaction: they are acked `stored` and counted as capacity drops, exactly as
        // if they had been evicted one commit later, which is what the policy promises.
        if totals.deviceBytes == nil {
            totals.deviceBytes = try bytesPerDevice(fromTable: countFromTable)
        }
        // Rows of one device in sequence order; without an index on device this walks the table
        // from its oldest row and stops after 64 matches, which is short for the heaviest device.
        let oldest = try db.statement("SELECT seq, size FROM events WHERE device = ? ORDER BY seq LIMIT 64")
        let delete = try db.statement("DELETE FROM events WHERE seq = ?")
        var dropped: Int64 = 0
        while totals.bytes + size > configuration.maxBytes, evictionBudget > 0 {
            guard let heaviest = totals.deviceBytes?.max(by: { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) })?.key
            else { break }
            oldest.reset()
            try oldest.bind(1, heaviest)
            var victims: [(Int64, Int64)] = []
            while try oldest.step() { victims.append((oldest.int64(0), oldest.int64(1))) }
            guard !victims.isEmpty else {
                // The map disagrees with the table (it cannot, but never loop on it): count the table.
                guard !countFromTable else { return false }
                totals.deviceBytes = nil
                return try evictOldest(toFit: size, counters: &counters, countFromTable: true)
            }
            for (seq, victimSize) in victims where totals.bytes + size > configuration.maxBytes && evictionBudget > 0 {
                // Between two devices the heavier one keeps losing; re-pick once this one is no longer it.
                if let current = totals.deviceBytes?[heaviest], let top = totals.deviceBytes?.values.max(), current < top { break }
                delete.reset()
                try delete.bind(1, seq)
                try delete.step()
                rowsDeleted = true
                totals.count -= 1
                totals.bytes -= victimSize
                totals.account(heaviest, -victimSize)
                totals.tallyChanges.append(.deleted(seq: seq, device: heaviest, size: victimSize))
                evictionBudget -= victimSize
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

    /// Bytes waiting per device: the per-device tallies' (complete once the scan of a store opened
    /// with a backlog has ended) with this group's changes, which they get when it ends; else one
    /// pass over the table in row order. Not `GROUP BY device`: without an index on `device`
    /// SQLite sorts every row for it, in memory (`temp_store=MEMORY`), which with 1,000,000 events
    /// took 50 MB and held the writer for seconds.
    private func bytesPerDevice(fromTable: Bool) throws -> [String: Int64] {
        if !fromTable, let tallies = tallies.snapshot() {
            var bytes = tallies.mapValues(\.bytes)
            for change in totals.tallyChanges {
                switch change {
                case .inserted(_, let device, let size, _): bytes[device, default: 0] += size
                case .deleted(_, let device, let size): bytes[device, default: 0] -= size
                }
            }
            return bytes.filter { $0.value > 0 }
        }
        var bytes: [String: Int64] = [:]
        let rows = try db.statement("SELECT device, size FROM events")
        while try rows.step() { bytes[rows.text(0), default: 0] += rows.int64(1) }
        return bytes
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
