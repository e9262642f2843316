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
