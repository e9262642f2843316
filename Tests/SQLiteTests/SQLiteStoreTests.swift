import Foundation
import SQLite
import Synchronization
import Testing

@Suite final class SQLiteStoreTests: Sendable {
    static let schema = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, value TEXT NOT NULL);"

    /// This test's directory, removed when the test is over.
    let directory = NSTemporaryDirectory() + "sqlite-store-\(UUID().uuidString)"

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func temporaryPath() -> String {
        directory + "/\(UUID().uuidString)/store.db"
    }

    static func insert(_ connection: SQLiteConnection, _ value: String) throws(SQLiteError) {
        let insert = try connection.statement("INSERT INTO items (value) VALUES (?)")
        defer { insert.reset() }
        try insert.bind(1, value)
        try insert.step()
    }

    static func count(path: String) throws -> Int64? {
        try SQLiteConnection.open(path: path, readOnly: true).scalarInt("SELECT count(*) FROM items")
    }

    /// Where a body ran: the thread's name, and whether a Swift task was running there (it is on
    /// every thread of the cooperative pool that runs async code, never on the store's own).
    struct Place: Sendable {
        var threadName: String?
        var inTask: Bool
    }

    /// Set by a body on the store's thread, polled by the test.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .releasing) }
        var isSet: Bool { value.load(ordering: .acquiring) }
    }

    static var here: Place {
        Place(threadName: Thread.current.name, inTask: withUnsafeCurrentTask { $0 != nil })
    }

    @Test func readsAndWritesRunOnTheStoresOwnThreadNotOnTheCooperativePool() async throws {
        let store = try SQLiteStore(path: temporaryPath(), synchronous: .full, schema: Self.schema, name: "test")
        #expect(store.threadName == "sqlite-test")
        #expect(Self.here.inTask, "the test itself runs in a task")
        let writer = try await store.write { connection throws(SQLiteError) -> Place in
            try Self.insert(connection, "a")
            return Self.here
        }
        let reader = try await store.read { _ in Self.here }
        for place in [writer, reader] {
            #expect(place.threadName == "sqlite-test")
            #expect(!place.inTask, "the body ran on a thread without a task: not one of the cooperative pool's")
        }
        await store.close()
    }

    @Test func aWriteThatThrowsIsRolledBack() async throws {
        let path = temporaryPath()
        let store = try SQLiteStore(path: path, synchronous: .full, schema: Self.schema, name: "rollback")
        await #expect(throws: SQLiteError.self) {
            try await store.write { connection throws(SQLiteError) in
                try Self.insert(connection, "kept only if the whole write commits")
                try connection.execute("INSERT INTO no_such_table VALUES (1)")
            }
        }
        let left = try await store.read { connection throws(SQLiteError) in try connection.scalarInt("SELECT count(*) FROM items") }
        #expect(left == 0)
        await store.close()
    }

    @Test func closingWaitsForQueuedWritesThenRefusesNewWork() async throws {
        let path = temporaryPath()
        let store = try SQLiteStore(path: path, synchronous: .full, schema: Self.schema, name: "close")
        // Hold the store's thread so that the writes below queue up behind it.
        let gate = DispatchSemaphore(value: 0)
        var released = false
        defer { if !released { gate.signal() } }  // a failed expectation must not leave the thread held
        let entered = Flag()
        let held = Task { try await store.write { connection throws(SQLiteError) in
            entered.set()
            gate.wait()
            try Self.insert(connection, "first")
        } }
        var polls = 0
        while !entered.isSet, polls < 10_000 {
            polls += 1
            try await Task.sleep(for: .milliseconds(1))
        }
        try #require(entered.isSet, "the first write holds the store's thread")
        let writes = 20
        let queued = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<writes {
                    group.addTask { try await store.write { connection throws(SQLiteError) in try Self.insert(connection, "queued-\(index)") } }
                }
                try await group.waitForAll()
            }
        }
        // Wait (bounded) until every write is queued behind the held one.
        polls = 0
        while store.queued < writes, polls < 10_000 {
            polls += 1
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(store.queued == writes)
        let closed = Task { await store.close() }
        polls = 0
        while store.isOpen, polls < 10_000 {
            polls += 1
            try await Task.sleep(for: .milliseconds(1))
        }
        #expect(!store.isOpen, "close() was asked for")
        #expect(try Self.count(path: path) == 0, "nothing is committed while the first write is held")
        gate.signal()
        released = true
        await closed.value
        // Closed: everything queued before was committed, and the database file is closed.
        #expect(try Self.count(path: path) == Int64(writes + 1))
        try await held.value
        try await queued.value
        await #expect(throws: SQLiteError.self) {
            try await store.write { connection throws(SQLiteError) in try Self.insert(connection, "too late") }
        }
        #expect(try Self.count(path: path) == Int64(writes + 1))
    }
}
