import Dispatch
import Foundation
import SQLite

/// Reads the outbox on its own connection and serial queue. In WAL mode readers never wait for
/// the writer's commits, so the forwarder's reads and `outbox stats` don't slow ingest down.
final class OutboxReader: @unchecked Sendable {
    // `db` is only touched on `queue`.
    private let db: SQLiteConnection
    private let queue = DispatchQueue(label: "outbox-reader")

    init(path: String, readOnly: Bool = false) throws {
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
        try await onQueue { db in try Self.stats(db) }
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

    static func stats(_ db: SQLiteConnection) throws -> OutboxStats {
        let now = Date().timeIntervalSince1970
        func age(_ receivedAtMs: Int64?) -> Double? {
            receivedAtMs.map { max(0, now - Double($0) / 1000) }
        }
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
        let perDevice = try db.statement(
            "SELECT device, count(*), sum(size), min(received_at) FROM events GROUP BY device ORDER BY count(*) DESC, device")
        while try perDevice.step() {
            devices.append(OutboxStats.Device(
                deviceId: perDevice.text(0), depth: perDevice.int64(1), bytes: perDevice.int64(2),
                oldestAgeSeconds: age(perDevice.int64(3))))
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
