import SQLite

/// The outbox's tables, versioned through `PRAGMA user_version`. Each migration moves the schema
/// one version up inside the caller's transaction; a database from a newer gateway is refused
/// rather than guessed at.
enum OutboxSchema {
    static let migrations: [String] = [
        // 1: events, dedup memory, counters, running totals.
        """
        CREATE TABLE events(
            seq INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            event_id TEXT NOT NULL,
            key TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            size INTEGER NOT NULL,
            payload BLOB NOT NULL
        );
        CREATE TABLE seen(
            id INTEGER PRIMARY KEY,
            device TEXT NOT NULL,
            event_id TEXT NOT NULL,
            seen_at INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX seen_by_event ON seen(device, event_id);
        CREATE TABLE counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE totals(
            id INTEGER PRIMARY KEY CHECK (id = 1),
            count INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            last_seq INTEGER NOT NULL
        );
        INSERT INTO totals VALUES (1, 0, 0, 0);
        """,
        // 2: a record may name its own upstream topic (command status, shadow documents); NULL is
        // the event topic template (upstream.topic).
        """
        ALTER TABLE events ADD COLUMN topic TEXT;
        """,
    ]

    static var currentVersion: Int64 { Int64(migrations.count) }

    /// Brings the database to ``currentVersion``.
    static func migrate(_ db: SQLiteConnection) throws {
        let version = try db.scalarInt("PRAGMA user_version") ?? 0
        if version > currentVersion {
            throw OutboxError(.openFailed, "database schema version \(version) is newer than this gateway's \(currentVersion)")
        }
        guard version < currentVersion else { return }
        try db.execute("BEGIN IMMEDIATE")
        do {
            for step in Int(version)..<migrations.count {
                try db.execute(migrations[step])
            }
            try db.execute("PRAGMA user_version = \(currentVersion)")
            try db.execute("COMMIT")
        } catch {
            try? db.execute("ROLLBACK")
            throw error
        }
    }
}
