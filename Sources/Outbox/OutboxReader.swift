import Dispatch
import Foundation
import SQLite

/// Reads the outbox on its own connection and serial queue. In WAL mode readers never wait for
/// the writer's commits, so the forwarder's reads and `outbox stats` don't slow ingest down.
final class OutboxReader: @unchecked Sendable {
    // `db` is only touched on `queue`.
    private let db: SQLiteConnection
    private let queue = DispatchQueue(label: "outbox-reader")
    /// The writer's per-device counts, when this reader belongs to a running outbox.
    private let tallies: DeviceTallies?

    init(path: String, readOnly: Bool = false, tallies: DeviceTallies? = nil) throws {
        self.tallies = tallies
        db = try SQLiteConnection.open(path: path, readOnly: readOnly)
        try db.execute("PRAGMA query_only=1")
    }

    private func onQueue<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { [self] in
                continuation.resume(with: Result { try body(self.db) })
            }
        }
    }

    func pending(after seq: Int64, limit: Int) async throws -> [StoredEvent] {
        try await onQueue { db in try Self.pending(db, after: seq, limit: limit) }
    }

    func stats() async throws -> OutboxStats {
        try await onQueue { [tallies] db in try Self.stats(db, tallies: tallies) }
    }

    func oldestReceivedAt() async throws -> Int64? {
        try await onQueue { db in try db.scalarInt("SELECT received_at FROM events ORDER BY seq LIMIT 1") }
    }

    func peek(device: String?, limit: Int) async throws -> [StoredEvent] {
        try await onQueue { db in try Self.peek(db, device: device, limit: limit) }
    }

    static func pending(_ db: SQLiteConnection, after seq: Int64, limit: Int) throws -> [StoredEvent] {
        let stmt = try db.statement(
            "SELECT seq, device, event_id, key, received_at, payload, topic FROM events WHERE seq > ? ORDER BY seq LIMIT ?")
        try stmt.bind(1, seq)
        try stmt.bind(2, Int64(limit))
        return try rows(stmt)
    }

    static func peek(_ db: SQLiteConnection, device: String?, limit: Int) throws -> [StoredEvent] {
        if let device {
            let stmt = try db.statement(
                "SELECT seq, device, event_id, key, received_at, payload, topic FROM events WHERE device = ? ORDER BY seq LIMIT ?")
            try stmt.bind(1, device)
            try stmt.bind(2, Int64(limit))
            return try rows(stmt)
        }
        return try pending(db, after: 0, limit: limit)
    }

    private static func rows(_ stmt: SQLiteStatement) throws -> [StoredEvent] {
        var events: [StoredEvent] = []
        while try stmt.step() {
            events.append(StoredEvent(
                seq: stmt.int64(0), device: stmt.text(1), eventID: stmt.text(2), key: stmt.text(3),
                receivedAt: stmt.int64(4), payload: stmt.blob(5), topic: stmt.isNull(6) ? nil : stmt.text(6)))
        }
        return events
    }

    /// The per-device list from the writer's tallies, most events first. A device whose oldest
    /// event was deleted gets the next one looked up from that point (a range read from there on,
    /// usually a few rows), and the answer kept for the next time.
    private static func devices(
        _ db: SQLiteConnection, snapshot: [String: DeviceTallies.Tally], tallies: DeviceTallies,
        age: (Int64?) -> Double?
    ) throws -> [OutboxStats.Device] {
        let next = try db.statement("SELECT seq, received_at FROM events WHERE seq > ? AND device = ? ORDER BY seq LIMIT 1")
        var devices: [OutboxStats.Device] = []
        devices.reserveCapacity(snapshot.count)
        for (device, tally) in snapshot {
            var oldest: Int64?
            switch tally.oldest {
            case .known(_, let receivedAt), .tentative(_, let receivedAt):
                oldest = receivedAt
            case .after(let bound):
                next.reset()
                try next.bind(1, bound)
                try next.bind(2, device)
                if try next.step() {
                    oldest = next.int64(1)
                    tallies.resolved(device, deletions: tally.deletions, seq: next.int64(0), receivedAt: next.int64(1))
                }
            }
            devices.append(OutboxStats.Device(deviceId: device, depth: tally.count, bytes: tally.bytes, oldestAgeSeconds: age(oldest)))
        }
        next.reset()
        devices.sort { $0.depth != $1.depth ? $0.depth > $1.depth : $0.deviceId < $1.deviceId }
        return devices
    }

    static func stats(_ db: SQLiteConnection, tallies: DeviceTallies? = nil) throws -> OutboxStats {
        let now = Date().timeIntervalSince1970
        func age(_ receivedAtMs: Int64?) -> Double? {
            receivedAtMs.map { max(0, now - Double($0) / 1000) }
        }
        // The tallies before the read transaction: every change they show is committed, so the
        // transaction sees it (a lookup of an oldest event must not find a row they know is gone).
        let snapshot = tallies?.snapshot()
        try db.execute("BEGIN")
        defer { try? db.execute("COMMIT") }
        // The totals row counts the events up to its last_seq (the writer does not rewrite it with
        // every commit); the few appended after it are counted from the table.
        let totals = try db.statement(
            "SELECT t.count + (SELECT count(*) FROM events WHERE seq > t.last_seq), t.bytes + (SELECT coalesce(sum(size), 0) FROM events WHERE seq > t.last_seq) FROM totals t WHERE t.id = 1")
        guard try totals.step() else { throw OutboxError(.corrupt, "totals row missing") }
        let depth = totals.int64(0)
        let bytes = totals.int64(1)
        totals.reset()
        let oldest = try db.scalarInt("SELECT received_at FROM events ORDER BY seq LIMIT 1")

        var devices: [OutboxStats.Device] = []
        if let tallies, let snapshot {
            devices = try Self.devices(db, snapshot: snapshot, tallies: tallies, age: age)
        } else {
            // No running writer, or it is still counting a backlog it opened with: ask the table.
            let perDevice = try db.statement(
                "SELECT device, count(*), sum(size), min(received_at) FROM events GROUP BY device ORDER BY count(*) DESC, device")
            while try perDevice.step() {
                devices.append(OutboxStats.Device(
                    deviceId: perDevice.text(0), depth: perDevice.int64(1), bytes: perDevice.int64(2),
                    oldestAgeSeconds: age(perDevice.int64(3))))
            }
        }
        var drops: [String: Int64] = Dictionary(uniqueKeysWithValues: DropReason.allCases.map { ($0.rawValue, 0) })
        var rejects: [String: Int64] = [:]
        var wear: [String: Int64] = [:]
        let counters = try db.statement("SELECT name, value FROM counters")
        while try counters.step() {
            let name = counters.text(0)
            if name.hasPrefix("drop.") {
                drops[String(name.dropFirst(5)), default: 0] += counters.int64(1)
            } else if name.hasPrefix("reject.") {
                rejects[String(name.dropFirst(7)), default: 0] += counters.int64(1)
            } else if name.hasPrefix("wear.") {
                wear[String(name.dropFirst(5)), default: 0] += counters.int64(1)
            }
        }
        return OutboxStats(
            depth: depth, bytes: bytes, oldestAgeSeconds: age(oldest), devices: devices, drops: drops, rejects: rejects,
            wear: wear.isEmpty
                ? nil : OutboxStats.Wear(commits: wear["commits"] ?? 0, writtenBytes: wear["writtenBytes"] ?? 0, seconds: wear["seconds"] ?? 0))
    }
}
