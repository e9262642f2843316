import CSQLite

/// An error from SQLite with its result code and message.
struct SQLiteError: Error, CustomStringConvertible {
    var code: Int32
    var message: String

    /// Primary result code (extended codes carry the primary one in the low byte).
    var primaryCode: Int32 { code & 0xFF }

    /// The database file is corrupt or not a database at all.
    var isCorruption: Bool { primaryCode == SQLITE_CORRUPT || primaryCode == SQLITE_NOTADB }

    /// Out of space: the disk, or the page-count cap.
    var isFull: Bool { primaryCode == SQLITE_FULL }

    var description: String { "SQLite error \(code): \(message)" }

    /// A corruption found by the gateway's own check (`PRAGMA quick_check`).
    static func corrupt(_ message: String) -> SQLiteError {
        SQLiteError(code: SQLITE_CORRUPT, message: message)
    }
}

/// Owns one `sqlite3` connection. Not thread-safe: each connection is used by one thread at a
/// time (the outbox writer thread or the reader queue), which is what SQLite's default
/// multi-thread mode requires.
final class SQLiteConnection {
    private let handle: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Opens (and with `readOnly == false`, creates) the database at `path`.
    static func open(path: String, readOnly: Bool) throws(SQLiteError) -> SQLiteConnection {
        var db: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: message)
        }
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5000)
        return SQLiteConnection(handle: db)
    }

    func error(_ code: Int32) -> SQLiteError {
        SQLiteError(code: code, message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String) throws(SQLiteError) {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    /// A cached prepared statement for `sql`, reset and with bindings cleared.
    func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        if let cached = statements[sql] {
            cached.reset()
            return cached
        }
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc) }
        let statement = SQLiteStatement(handle: stmt, connection: self)
        statements[sql] = statement
        return statement
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    /// Reads one integer from a single-row query (for PRAGMAs and aggregates).
    func scalarInt(_ sql: String) throws(SQLiteError) -> Int64? {
        let stmt = try statement(sql)
        defer { stmt.reset() }
        guard try stmt.step() else { return nil }
        return stmt.isNull(0) ? nil : stmt.int64(0)
    }

    func scalarText(_ sql: String) throws(SQLiteError) -> String? {
        let stmt = try statement(sql)
        defer { stmt.reset() }
        guard try stmt.step() else { return nil }
        return stmt.isNull(0) ? nil : stmt.text(0)
    }
}

/// A prepared statement owned by its connection's cache.
final class SQLiteStatement {
    private let handle: OpaquePointer
    private unowned let connection: SQLiteConnection

    fileprivate init(handle: OpaquePointer, connection: SQLiteConnection) {
        self.handle = handle
        self.connection = connection
    }

    deinit {
        sqlite3_finalize(handle)
    }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func bind(_ index: Int32, _ value: Int64) throws(SQLiteError) {
        let rc = sqlite3_bind_int64(handle, index, value)
        guard rc == SQLITE_OK else { throw connection.error(rc) }
    }

    func bind(_ index: Int32, _ value: String) throws(SQLiteError) {
        let rc = value.utf8.withContiguousStorageIfAvailable { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                edge_sqlite3_bind_text_transient(handle, index, $0.baseAddress, Int32($0.count))
            }
        } ?? {
            var copy = value
            return copy.withUTF8 { buffer in
                buffer.withMemoryRebound(to: CChar.self) {
                    edge_sqlite3_bind_text_transient(handle, index, $0.baseAddress, Int32($0.count))
                }
            }
        }()
        guard rc == SQLITE_OK else { throw connection.error(rc) }
    }

    func bind(_ index: Int32, blob value: [UInt8]) throws(SQLiteError) {
        let rc = value.withUnsafeBytes { buffer in
            edge_sqlite3_bind_blob_transient(handle, index, buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(buffer.count))
        }
        guard rc == SQLITE_OK else { throw connection.error(rc) }
    }

    /// Steps once: `true` with a row, `false` when done.
    @discardableResult
    func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = connection.error(rc)
            sqlite3_reset(handle)
            throw error
        }
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

    func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    func blob(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}
