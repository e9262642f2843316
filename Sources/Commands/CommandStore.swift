import Foundation
import GatewayCore
import SQLite

/// The durable record of commands (SQLite, a file of its own, `synchronous=FULL`): one row per
/// `(device, commandId)` with its state, the attempts to deliver it and the last status whose
/// upstream message the caller confirmed. Every method commits before it returns (on disk);
/// reads and commits run on the store's own thread (``SQLiteStore``), never on Swift's
/// cooperative pool. The schema is harmless to repeat.
///
/// Used by ``CommandQueue``, which keeps the unfinished commands in memory and decides; this
/// type only reads and writes rows.
final class CommandStore: Sendable {
    static let schema = """
        CREATE TABLE IF NOT EXISTS commands (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id TEXT NOT NULL,
            command_id TEXT NOT NULL,
            name TEXT NOT NULL,
            params BLOB,
            expires_at INTEGER,
            received_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            result BLOB,
            message TEXT,
            updated_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_sent_at INTEGER,
            change_seq INTEGER NOT NULL,
            reported_status TEXT,
            UNIQUE (device_id, command_id)
        );
        CREATE INDEX IF NOT EXISTS commands_unfinished ON commands (seq) WHERE status IN ('queued', 'delivered');
        CREATE INDEX IF NOT EXISTS commands_unreported ON commands (change_seq) WHERE reported_status IS NOT status;
        CREATE INDEX IF NOT EXISTS commands_finished ON commands (updated_at) WHERE status NOT IN ('queued', 'delivered');
        """

    static let columns =
        "seq, device_id, command_id, name, params, expires_at, received_at, status, result, message, updated_at, attempts, last_sent_at, change_seq, reported_status"

    private let store: SQLiteStore

    /// Opens (creates) the file at `path` and starts the store's thread.
    init(path: String) throws(SQLiteError) {
        store = try SQLiteStore(path: path, synchronous: .full, schema: Self.schema, name: "commands")
        // Parameters may carry what only the device should see (credentials, codes): owner-only
        // file (SQLite gives its -wal and -shm files the same mode).
        if path != ":memory:" { chmod(path, 0o600) }
    }

    /// What ``CommandQueue`` keeps in memory: the unfinished commands in queue order, and the
    /// highest change number given so far.
    func load() async throws(SQLiteError) -> (unfinished: [CommandRecord], lastChange: Int64) {
        try await store.read { connection throws(SQLiteError) in
            let select = try connection.statement(
                "SELECT \(Self.columns) FROM commands WHERE status IN ('queued', 'delivered') ORDER BY seq")
            defer { select.reset() }
            var records: [CommandRecord] = []
            while try select.step() {
                if let record = Self.record(select) { records.append(record) }
            }
            return (records, try connection.scalarInt("SELECT max(change_seq) FROM commands") ?? 0)
        }
    }

    enum InsertOutcome: Sendable {
        /// Stored with this `seq`.
        case inserted(seq: Int64)
        /// Already stored (in any state): not stored again.
        case existing(CommandRecord)
        /// Not stored: `refusal` was given and no such command was stored before.
        case refused
    }

    /// Stores `command` as `queued` unless its `(device, commandId)` is stored already; with a
    /// `refusal` (the queue is full), only looks for an existing one — a repeat is answered
    /// with its status even when the queue is full.
    func insert(_ command: CloudCommand, changeSeq: Int64, refuse: Bool) async throws(SQLiteError) -> InsertOutcome {
        try await store.write { connection throws(SQLiteError) -> InsertOutcome in
            if let existing = try Self.find(CommandKey(device: command.device, commandID: command.commandID), connection) {
                return .existing(existing)
            }
            if refuse { return .refused }
            let insert = try connection.statement(
                "INSERT INTO commands (device_id, command_id, name, params, expires_at, received_at, status, updated_at, attempts, change_seq) "
                    + "VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, 0, ?)")
            defer { insert.reset() }
            try insert.bind(1, command.device.rawValue)
            try insert.bind(2, command.commandID)
            try insert.bind(3, command.name)
            try insert.bind(4, blob: command.params)
            try insert.bind(5, command.expiresAt)
            try insert.bind(6, command.receivedAt)
            try insert.bind(7, command.receivedAt)
            try insert.bind(8, changeSeq)
            try insert.step()
            return .inserted(seq: try connection.scalarInt("SELECT last_insert_rowid()") ?? 0)
        }
    }

    /// Writes the mutable fields of `records` (by device and command id), all in one commit.
    func update(_ records: [CommandRecord]) async throws(SQLiteError) {
        guard !records.isEmpty else { return }
        try await store.write { connection throws(SQLiteError) in
            let update = try connection.statement(
                "UPDATE commands SET status = ?, result = ?, message = ?, updated_at = ?, attempts = ?, last_sent_at = ?, "
                    + "change_seq = ?, reported_status = ? WHERE device_id = ? AND command_id = ?")
            defer { update.reset() }
            for record in records {
                try update.bind(1, record.status.rawValue)
                try update.bind(2, blob: record.result)
                try update.bind(3, text: record.message)
                try update.bind(4, record.updatedAt)
                try update.bind(5, Int64(record.attempts))
                try update.bind(6, record.lastSentAt)
                try update.bind(7, record.changeSeq)
                try update.bind(8, text: record.reportedStatus?.rawValue)
                try update.bind(9, record.device.rawValue)
                try update.bind(10, record.commandID)
                try update.step()
                update.reset()
            }
        }
    }

    /// Records that the upstream message of `status` is stored in the outbox, unless a later
    /// status was confirmed already or `status` is not one the command has reached. Returns the
    /// record as now stored, nil when there is no such command.
    func markReported(_ key: CommandKey, status: CommandStatus) async throws(SQLiteError) -> CommandRecord? {
        try await store.write { connection throws(SQLiteError) -> CommandRecord? in
            guard var record = try Self.find(key, connection) else { return nil }
            let reached = status == record.status || (status.rank < record.status.rank && !status.isFinal)
            let advances = record.reportedStatus.map { $0.rank < status.rank || $0 == status } ?? true
            guard reached, advances, record.reportedStatus != status else { return record }
            let update = try connection.statement("UPDATE commands SET reported_status = ? WHERE device_id = ? AND command_id = ?")
            defer { update.reset() }
            try update.bind(1, status.rawValue)
            try update.bind(2, key.device.rawValue)
            try update.bind(3, key.commandID)
            try update.step()
            record.reportedStatus = status
            return record
        }
    }

    func find(_ key: CommandKey) async throws(SQLiteError) -> CommandRecord? {
        try await store.read { connection throws(SQLiteError) in try Self.find(key, connection) }
    }

    /// Commands whose current status has no confirmed upstream message, in the order of their
    /// changes.
    func unreported() async throws(SQLiteError) -> [CommandRecord] {
        try await store.read { connection throws(SQLiteError) in
            let select = try connection.statement(
                "SELECT \(Self.columns) FROM commands WHERE reported_status IS NOT status ORDER BY change_seq")
            defer { select.reset() }
            var records: [CommandRecord] = []
            while try select.step() {
                if let record = Self.record(select) { records.append(record) }
            }
            return records
        }
    }

    /// Finished commands (of `device`, or of all), the `limit` most recently finished, newest
    /// first.
    func finished(device: DeviceID?, limit: Int) async throws(SQLiteError) -> [CommandRecord] {
        try await store.read { connection throws(SQLiteError) in
            let select = try connection.statement(
                "SELECT \(Self.columns) FROM commands WHERE status NOT IN ('queued', 'delivered') AND (?1 IS NULL OR device_id = ?1) "
                    + "ORDER BY updated_at DESC, seq DESC LIMIT ?2")
            defer { select.reset() }
            try select.bind(1, text: device?.rawValue)
            try select.bind(2, Int64(max(0, limit)))
            var records: [CommandRecord] = []
            while try select.step() {
                if let record = Self.record(select) { records.append(record) }
            }
            return records
        }
    }

    /// Deletes finished commands that finished before `beforeMs` and whose final status was
    /// reported; returns how many.
    func purge(finishedBefore beforeMs: Int64) async throws(SQLiteError) -> Int {
        try await store.write { connection throws(SQLiteError) -> Int in
            let delete = try connection.statement(
                "DELETE FROM commands WHERE status NOT IN ('queued', 'delivered') AND reported_status = status AND updated_at < ?")
            defer { delete.reset() }
            try delete.bind(1, beforeMs)
            try delete.step()
            return connection.changes
        }
    }

    /// Finishes what is queued and closes the file.
    func close() async {
        await store.close()
    }

    // MARK: - Rows

    private static func find(_ key: CommandKey, _ connection: SQLiteConnection) throws(SQLiteError) -> CommandRecord? {
        let select = try connection.statement("SELECT \(columns) FROM commands WHERE device_id = ? AND command_id = ?")
        defer { select.reset() }
        try select.bind(1, key.device.rawValue)
        try select.bind(2, key.commandID)
        guard try select.step() else { return nil }
        return record(select)
    }

    /// A row in the order of ``columns``; nil for a row no version of the daemon writes (an
    /// invalid device id or status), which is left alone rather than failing the whole store.
    private static func record(_ row: SQLiteStatement) -> CommandRecord? {
        guard let device = DeviceID(row.text(1)), let status = CommandStatus(rawValue: row.text(7)) else { return nil }
        return CommandRecord(
            device: device, commandID: row.text(2), name: row.text(3),
            params: row.isNull(4) ? nil : row.blob(4), expiresAt: row.isNull(5) ? nil : row.int64(5), receivedAt: row.int64(6),
            status: status, result: row.isNull(8) ? nil : row.blob(8), message: row.isNull(9) ? nil : row.text(9),
            updatedAt: row.int64(10), attempts: Int(clamping: row.int64(11)), lastSentAt: row.isNull(12) ? nil : row.int64(12),
            seq: row.int64(0), changeSeq: row.int64(13), reportedStatus: row.isNull(14) ? nil : CommandStatus(rawValue: row.text(14)))
    }
}

extension SQLiteStatement {
    fileprivate func bind(_ index: Int32, _ value: Int64?) throws(SQLiteError) {
        if let value { try bind(index, value) } else { try bindNull(index) }
    }

    fileprivate func bind(_ index: Int32, text value: String?) throws(SQLiteError) {
        if let value { try bind(index, value) } else { try bindNull(index) }
    }

    fileprivate func bind(_ index: Int32, blob value: [UInt8]?) throws(SQLiteError) {
        if let value { try bind(index, blob: value) } else { try bindNull(index) }
    }
}
