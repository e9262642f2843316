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
    /// What the writer's open transaction holds (events only in the event log so far, deletions),
    /// merged into every read.
    private let uncommitted: UncommittedView?
    /// Without a writer in this process: the event log, whose events a running daemon may not
    /// have committed yet.
    private let logPath: String?

    init(
        path: String, readOnly: Bool = false, tallies: DeviceTallies? = nil, uncommitted: UncommittedView? = nil,
        logPath: String? = nil
    ) throws {
        self.tallies = tallies
        self.uncommitted = uncommitted
        self.logPath = logPath
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
        if let events = uncommitted?.pendingInMemory(after: seq, limit: limit) { return events }
        // The view before the read: what it no longer holds is committed, so the read sees it.
        return try await onQueue { [self] db in try Self.pending(db, after: seq, limit: limit, view: try self.view(db, window: (seq, limit))) }
    }

    func stats() async throws -> OutboxStats {
        try await onQueue { [self] db in try Self.stats(db, tallies: self.tallies, view: try self.view(db), standalone: self.uncommitted == nil) }
    }

    func oldestReceivedAt() async throws -> Int64? {
        try await onQueue { [self] db in
            try Self.pending(db, after: 0, limit: 1, view: try self.view(db)).first?.receivedAt
        }
    }

    func peek(device: String?, limit: Int) async throws -> [StoredEvent] {
        try await onQueue { [self] db in try Self.peek(db, device: device, limit: limit, view: try self.view(db)) }
    }

    /// What the writer's open transaction holds: from the writer in this process, else (a reader
    /// beside a running daemon) the events in the event log after the last committed one.
    /// With `window`: only what a read of the next `limit` events past `after` needs.
    private func view(_ db: SQLiteConnection, window: (after: Int64, limit: Int)? = nil) throws -> UncommittedView.State? {
        if let uncommitted {
            if let window { return uncommitted.window(after: window.after, limit: window.limit) }
            return uncommitted.snapshot()
        }
        guard let logPath else { return nil }
        let entries = EventLog.read(path: logPath)
        guard !entries.isEmpty else { return nil }
        let committed = try db.scalarInt(
            "SELECT max((SELECT last_seq FROM totals WHERE id = 1), coalesce((SELECT max(seq) FROM events), 0))") ?? 0
        let state = UncommittedView.State.fromLog(entries, after: committed)
        return state.inserted.isEmpty ? nil : state
    }

    static func pending(_ db: SQLiteConnection, after seq: Int64, limit: Int, view: UncommittedView.State? = nil) throws -> [StoredEvent] {
        let stmt = try db.statement(
            "SELECT seq, device, event_id, key, received_at, payload, topic FROM events WHERE seq > ? ORDER BY seq LIMIT ?")
        try stmt.bind(1, seq)
        // Rows the open transaction deleted are still there for this connection: read past them.
        try stmt.bind(2, Int64(limit + (view?.hidden.count ?? 0)))
        let committed = try rows(stmt)
        return view.map { $0.merge(committed, after: seq, limit: limit) } ?? committed
    }

    static func peek(_ db: SQLiteConnection, device: String?, limit: Int, view: UncommittedView.State? = nil) throws -> [StoredEvent] {
        if let device {
            let stmt = try db.statement(
                "SELECT seq, device, event_id, key, received_at, payload, topic FROM events WHERE device = ? ORDER BY seq LIMIT ?")
            try stmt.bind(1, device)
            try stmt.bind(2, Int64(limit + (view?.hidden.count ?? 0)))
            let committed = try rows(stmt)
            return view.map { $0.merge(committed, after: 0, limit: limit, device: device) } ?? committed
        }
        return try pending(db, after: 0, limit: limit, view: view)
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
        view: UncommittedView.State?, age: (Int64?) -> Double?
    ) throws -> [OutboxStats.Device] {
        let next = try db.statement("SELECT seq, received_at FROM events WHERE seq > ? AND device = ? ORDER BY seq LIMIT 1")
        var devices: [OutboxStats.Device] = []
        devices.reserveCapacity(snapshot.count)
        for (device, tally) in snapshot {
            var oldest: Int64?
            switch tally.oldest {
            case .known(_, let receivedAt), .tentative(_, let receivedAt):
                oldest = receivedAt
            case .after(var bound):
                // The next row of the device that the writer's open transaction has not deleted,
                // else its first event in that transaction.
                var found: (seq: Int64, receivedAt: Int64)?
                while found == nil {
                    next.reset()
                    try next.bind(1, bound)
                    try next.bind(2, device)
                    guard try next.step() else { break }
                    let row = (seq: next.int64(0), receivedAt: next.int64(1))
                    if view?.isHidden(row.seq) == true { bound = row.seq } else { found = row }
                }
                if found == nil, let event = view?.inserted.first(where: { $0.device == device && $0.seq > bound }) {
                    found = (event.seq, event.receivedAt)
                }
                if let found {
                    oldest = found.receivedAt
                    tallies.resolved(device, deletions: tally.deletions, seq: found.seq, receivedAt: found.receivedAt)
                }
            }
            devices.append(OutboxStats.Device(deviceId: device, depth: tally.count, bytes: tally.bytes, oldestAgeSeconds: age(oldest)))
        }
        next.reset()
        devices.sort { $0.depth != $1.depth ? $0.depth > $1.depth : $0.deviceId < $1.deviceId }
        return devices
    }

    /// - Parameter standalone: `view` comes from the event log (no writer here): its events are
    ///   added to the counts read from the database.
    static func stats(
        _ db: SQLiteConnection, tallies: DeviceTallies? = nil, view: UncommittedView.State? = nil, standalone: Bool = false
    ) throws -> OutboxStats {
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
        // With the writer's transaction open, its own depth counts the events only in the log.
        var depth = view?.depth?.count ?? totals.int64(0)
        var bytes = view?.depth?.bytes ?? totals.int64(1)
        totals.reset()
        var logged: [String: (count: Int64, bytes: Int64, oldest: Int64)] = [:]
        if standalone, let view {
            for event in view.inserted {
                let size = event.accountedSize
                depth += 1
                bytes += size
                let was = logged[event.device] ?? (0, 0, event.receivedAt)
                logged[event.device] = (was.count + 1, was.bytes + size, min(was.oldest, event.receivedAt))
            }
        }
        let oldest = try pending(db, after: 0, limit: 1, view: view).first?.receivedAt

        var devices: [OutboxStats.Device] = []
        if let tallies, let snapshot {
            devices = try Self.devices(db, snapshot: snapshot, tallies: tallies, view: view, age: age)
        } else {
            // No running writer, or it is still counting a backlog it opened with: ask the table.
            let perDevice = try db.statement(
                "SELECT device, count(*), sum(size), min(received_at) FROM events GROUP BY device ORDER BY count(*) DESC, device")
            while try perDevice.step() {
                let device = perDevice.text(0)
                let log = logged.removeValue(forKey: device)
                devices.append(OutboxStats.Device(
                    deviceId: device, depth: perDevice.int64(1) + (log?.count ?? 0), bytes: perDevice.int64(2) + (log?.bytes ?? 0),
                    oldestAgeSeconds: age(perDevice.int64(3))))
            }
            for (device, log) in logged {
                devices.append(OutboxStats.Device(deviceId: device, depth: log.count, bytes: log.bytes, oldestAgeSeconds: age(log.oldest)))
            }
            if !logged.isEmpty { devices.sort { $0.depth != $1.depth ? $0.depth > $1.depth : $0.deviceId < $1.deviceId } }
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
        // What the writer's open transaction counted.
        for (name, value) in view?.counters ?? [:] {
            if name.hasPrefix("drop.") {
                drops[String(name.dropFirst(5)), default: 0] += value
            } else if name.hasPrefix("reject.") {
                rejects[String(name.dropFirst(7)), default: 0] += value
            } else if name.hasPrefix("wear.") {
                wear[String(name.dropFirst(5)), default: 0] += value
            }
        }
        return OutboxStats(
            depth: depth, bytes: bytes, oldestAgeSeconds: age(oldest), devices: devices, drops: drops, rejects: rejects,
            wear: wear.isEmpty
                ? nil : OutboxStats.Wear(commits: wear["commits"] ?? 0, writtenBytes: wear["writtenBytes"] ?? 0, seconds: wear["seconds"] ?? 0))
    }
}
