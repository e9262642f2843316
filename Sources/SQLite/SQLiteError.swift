import CSQLite

/// An error from SQLite with its result code and message.
public struct SQLiteError: Error, CustomStringConvertible {
    public var code: Int32
    public var message: String

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    /// Primary result code (extended codes carry the primary one in the low byte).
    public var primaryCode: Int32 { code & 0xFF }

    /// The database file is corrupt or not a database at all.
    public var isCorruption: Bool { primaryCode == SQLITE_CORRUPT || primaryCode == SQLITE_NOTADB }

    /// Out of space: the disk, or the page-count cap.
    public var isFull: Bool { primaryCode == SQLITE_FULL }

    public var description: String { "SQLite error \(code): \(message)" }

    /// A corruption found by the gateway's own check (`PRAGMA quick_check`).
    public static func corrupt(_ message: String) -> SQLiteError {
        SQLiteError(code: SQLITE_CORRUPT, message: message)
    }
}
