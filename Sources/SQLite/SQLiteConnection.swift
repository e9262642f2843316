import CSQLite

/// Owns one `sqlite3` connection. Not thread-safe: each connection is used by one thread at a
/// time (the outbox writer thread, the reader queue, or a ``SQLiteStore``'s thread), which is
/// what SQLite's default multi-thread mode requires.
public final class SQLiteConnection {
    private let handle: OpaquePointer
    private var statements: [String: SQLiteStatement] = [:]

    private init(handle: OpaquePointer) {
        self.handle = handle
    }

    deinit {
        sqlite3_wal_hook(handle, nil, nil)
        statements.removeAll()
        sqlite3_close_v2(handle)
    }

    /// Opens (and with `readOnly == false`, creates) the database at `path`.
    public static func open(path: String, readOnly: Bool) throws(SQLiteError) -> SQLiteConnection {
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

    public func error(_ code: Int32) -> SQLiteError {
        SQLiteError(code: code, message: String(cString: sqlite3_errmsg(handle)))
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    /// A cached prepared statement for `sql`, reset and with bindings cleared.
    public func statement(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
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

    /// What one commit wrote, as seen by ``onCommitWritten(autocheckpointPages:_:)``.
    public struct CommitWrite: Sendable {
        /// WAL frames (pages) the commit appended.
        public var frames: Int
        /// WAL frames an automatic checkpoint after the commit copied into the database (0 when none
        /// ran); each page is written once however many of its frames the WAL holds, so this is an
        /// upper bound of the pages written.
        public var checkpointedPages: Int
    }

    private final class WALHookBox {
        let autocheckpointPages: Int
        let body: (CommitWrite) -> Void
        var lastFrames = 0
        var lastCheckpointed = 0
        init(autocheckpointPages: Int, body: @escaping (CommitWrite) -> Void) {
            self.autocheckpointPages = autocheckpointPages
            self.body = body
        }
    }

    private var walHookBox: WALHookBox?

    /// Calls `body` after every commit of this connection in WAL mode, on the committing thread,
    /// with the frames it appended to the WAL. This replaces SQLite's automatic checkpoint, so the
    /// hook runs it instead: a passive checkpoint once the WAL holds `autocheckpointPages` frames
    /// (what `PRAGMA wal_autocheckpoint` does), with the pages it copied reported.
    public func onCommitWritten(autocheckpointPages: Int, _ body: @escaping (CommitWrite) -> Void) {
        let box = WALHookBox(autocheckpointPages: autocheckpointPages, body: body)
        walHookBox = box
        sqlite3_wal_hook(handle, { context, db, name, pages in
            guard let context else { return SQLITE_OK }
            let box = Unmanaged<WALHookBox>.fromOpaque(context).takeUnretainedValue()
            let total = Int(pages)
            // The WAL starts again from its beginning after a complete checkpoint.
            let frames = total >= box.lastFrames ? total - box.lastFrames : total
            if total < box.lastFrames { box.lastCheckpointed = 0 }
            box.lastFrames = total
            var checkpointed: Int32 = 0
            if box.autocheckpointPages > 0, total >= box.autocheckpointPages {
                var logFrames: Int32 = 0
                if sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &logFrames, &checkpointed) != SQLITE_OK {
                    checkpointed = 0
                }
                // The count is of the whole WAL: what this checkpoint added is the difference.
                let cumulative = Int(max(checkpointed, 0))
                checkpointed = Int32(max(cumulative - box.lastCheckpointed, 0))
                box.lastCheckpointed = cumulative
            }
            box.body(CommitWrite(frames: frames, checkpointedPages: Int(checkpointed)))
            return SQLITE_OK
        }, Unmanaged.passUnretained(box).toOpaque())
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// No transaction is open (none was begun, or an error such as a full disk rolled it back).
    public var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    /// Reads one integer from a single-row query (for PRAGMAs and aggregates).
    public func scalarInt(_ sql: String) throws(SQLiteError) -> Int64? {
        let stmt = try statement(sql)
        defer { stmt.reset() }
        guard try stmt.step() else { return nil }
        return stmt.isNull(0) ? nil : stmt.int64(0)
    }

    public func scalarText(_ sql: String) throws(SQLiteError) -> String? {
        let stmt = try statement(sql)
        defer { stmt.reset() }
        guard try stmt.step() else { return nil }
        return stmt.isNull(0) ? nil : stmt.text(0)
    }
}
