import Foundation
import SQLite

/// The last record of every user the service described, in a SQLite file of its own, so a
/// dialog still knows its user (and whether they are blocked) while the service is down, also
/// after a restart. Reads and writes run on the cache's own thread (``SQLiteStore``), never on
/// Swift's cooperative pool.
public final class UserCache: Sendable {
    private let database: SQLiteStore
    private let maxEntries: Int

    public init(path: String, maxEntries: Int) throws(SQLiteError) {
        database = try SQLiteStore(
            path: path, synchronous: .normal,
            schema: """
            CREATE TABLE IF NOT EXISTS users (
                id TEXT PRIMARY KEY,
                record TEXT NOT NULL,
                fetched_at INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS users_fetched_at ON users (fetched_at);
            """,
            name: "users")
        self.maxEntries = maxEntries
    }

    /// The cached record of `id` and when it was fetched (ms since the epoch).
    public func record(_ id: String) async throws(SQLiteError) -> (record: UserRecord, fetchedAt: Int64)? {
        try await database.read { connection throws(SQLiteError) in
            let statement = try connection.statement("SELECT record, fetched_at FROM users WHERE id = ?")
            defer { statement.reset() }
            try statement.bind(1, id)
            guard try statement.step() else { return nil }
            guard let record = try? JSONDecoder().decode(UserRecord.self, from: Data(statement.text(0).utf8)) else { return nil }
            return (record, statement.int64(1))
        }
    }

    /// Stores `record` as fetched now; past `maxEntries` the least recently fetched are dropped.
    public func store(_ record: UserRecord, fetchedAt: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) async throws(SQLiteError) {
        let json = (try? JSONEncoder().encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        try await database.write { [maxEntries] connection throws(SQLiteError) in
            let insert = try connection.statement(
                "INSERT INTO users (id, record, fetched_at) VALUES (?, ?, ?) "
                    + "ON CONFLICT (id) DO UPDATE SET record = excluded.record, fetched_at = excluded.fetched_at")
            defer { insert.reset() }
            try insert.bind(1, record.id)
            try insert.bind(2, json)
            try insert.bind(3, fetchedAt)
            _ = try insert.step()
            let trim = try connection.statement(
                "DELETE FROM users WHERE id IN (SELECT id FROM users ORDER BY fetched_at DESC LIMIT -1 OFFSET ?)")
            defer { trim.reset() }
            try trim.bind(1, Int64(maxEntries))
            _ = try trim.step()
        }
    }

    /// Forgets `id` (the service said 404).
    public func remove(_ id: String) async throws(SQLiteError) {
        try await database.write { connection throws(SQLiteError) in
            let statement = try connection.statement("DELETE FROM users WHERE id = ?")
            defer { statement.reset() }
            try statement.bind(1, id)
            _ = try statement.step()
        }
    }

    public var count: Int {
        get async {
            (try? await database.read { (try? $0.scalarInt("SELECT count(*) FROM users")).flatMap { Int($0) } ?? 0 }) ?? 0
        }
    }
}
