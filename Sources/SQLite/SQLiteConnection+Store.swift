import Foundation

extension SQLiteConnection {
    /// How much a commit waits for the disk (`PRAGMA synchronous`).
    public enum Synchronous: String, Sendable {
        /// A commit is on disk when it returns (survives power loss).
        case full = "FULL"
        /// A commit may be lost on power loss, never corrupted (caches).
        case normal = "NORMAL"
    }

    /// Opens a small read-write store of the daemon's (the user cache, the registration sagas and
    /// registry): creates its folder when missing, switches it to WAL and applies `schema`
    /// (statements that are harmless to repeat, `CREATE TABLE IF NOT EXISTS …`).
    public static func openStore(path: String, synchronous: Synchronous, schema: String) throws(SQLiteError) -> SQLiteConnection {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let connection = try SQLiteConnection.open(path: path, readOnly: false)
        try connection.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = \(synchronous.rawValue);")
        try connection.execute(schema)
        return connection
    }
}
