import CSQLite
import Foundation

/// A small SQLite store of the daemon's (the registration sagas, the local registry, the user
/// cache) whose connection lives on a thread of its own.
///
/// Every read and write is queued to that thread and awaited through a continuation, in the order
/// they were asked for, so a commit that waits for an fsync on a slow SD card holds this store's
/// thread, never one of Swift concurrency's cooperative threads (the outbox's writer does the same
/// for the event store). ``close()`` lets everything already queued finish, then closes the
/// database; work asked for afterwards fails at once with a ``SQLiteError`` (`SQLITE_MISUSE`).
///
/// ```swift
/// let store = try SQLiteStore(path: path, synchronous: .full, schema: "CREATE TABLE IF NOT EXISTS t (v TEXT);", name: "example")
/// try await store.write { connection throws(SQLiteError) in
///     let insert = try connection.statement("INSERT INTO t (v) VALUES (?)")
///     defer { insert.reset() }
///     try insert.bind(1, "a")
///     try insert.step()
/// }
/// ```
public final class SQLiteStore: Sendable {
    /// The name of the store's thread (`sqlite-<name>`), as seen in a debugger or `top -H` (Linux
    /// shows the first 15 characters).
    public let threadName: String
    private let worker: Worker

    /// Opens the database with ``SQLiteConnection/openStore(path:synchronous:schema:)`` (on the
    /// calling thread: opening happens once, at start) and starts the store's thread.
    public convenience init(path: String, synchronous: SQLiteConnection.Synchronous, schema: String, name: String) throws(SQLiteError) {
        self.init(taking: try SQLiteConnection.openStore(path: path, synchronous: synchronous, schema: schema), name: name)
    }

    /// Takes over `connection` (which the caller must not use afterwards; it may have read from
    /// it first, e.g. to load what it keeps in memory) and starts the store's thread.
    public init(taking connection: SQLiteConnection, name: String) {
        threadName = "sqlite-\(name)"
        worker = Worker(connection: connection)
        worker.start(name: threadName)
    }

    deinit {
        // The thread finishes what is queued and closes the database; nobody waits for it.
        worker.close(waiter: nil)
    }

    /// Runs `body` on the store's thread with its connection; statements commit one by one.
    public func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws(SQLiteError) -> T) async throws(SQLiteError) -> T {
        let result: Result<T, SQLiteError> = await withCheckedContinuation { continuation in
            worker.submit { connection in
                guard let connection else {
                    continuation.resume(returning: .failure(SQLiteError(code: SQLITE_MISUSE, message: "the store is closed")))
                    return
                }
                continuation.resume(returning: Result { () throws(SQLiteError) -> T in try body(connection) })
            }
        }
        return try result.get()
    }

    /// Runs `body` on the store's thread in one transaction (`BEGIN IMMEDIATE` … `COMMIT`; rolled
    /// back when `body` throws). Returns when the commit is done (on disk with `.full`).
    public func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws(SQLiteError) -> T) async throws(SQLiteError) -> T {
        try await read { connection throws(SQLiteError) -> T in
            try connection.execute("BEGIN IMMEDIATE")
            do throws(SQLiteError) {
                let value = try body(connection)
                try connection.execute("COMMIT")
                return value
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// Finishes everything queued, closes the database and stops the thread.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            worker.close(waiter: continuation)
        }
    }

    /// Work queued and not yet started (for tests and diagnostics).
    public var queued: Int { worker.queued }

    /// False once ``close()`` was asked for: new work is refused from then on.
    public var isOpen: Bool { worker.isOpen }
}

extension SQLiteStore {
    /// The store's thread and its queue. Everything below `condition` is guarded by it, except
    /// `connection`, which only the store's thread touches after `start(name:)`.
    private final class Worker: @unchecked Sendable {
        /// One piece of work; called with nil when the store is closed.
        typealias Job = @Sendable (SQLiteConnection?) -> Void

        private let condition = NSCondition()
        private var jobs: [Job] = []
        private var closing = false
        private var closed = false
        private var closeWaiters: [CheckedContinuation<Void, Never>] = []
        private var connection: SQLiteConnection?  // store thread only

        init(connection: SQLiteConnection) {
            self.connection = connection
        }

        func start(name: String) {
            let thread = Thread { [self] in
                // Named from inside: on Linux a new thread otherwise keeps its creator's name (a
                // thread of the cooperative pool's), which would mislead `top -H` and the tests.
                Thread.current.name = name
                self.loop()
            }
            thread.name = name
            thread.start()
        }

        func submit(_ job: @escaping Job) {
            condition.lock()
            guard !closing else {
                condition.unlock()
                job(nil)
                return
            }
            jobs.append(job)
            condition.signal()
            condition.unlock()
        }

        func close(waiter: CheckedContinuation<Void, Never>?) {
            condition.lock()
            if closed {
                condition.unlock()
                waiter?.resume()
                return
            }
            closing = true
            if let waiter { closeWaiters.append(waiter) }
            condition.signal()
            condition.unlock()
        }

        var queued: Int {
            condition.lock()
            defer { condition.unlock() }
            return jobs.count
        }

        var isOpen: Bool {
            condition.lock()
            defer { condition.unlock() }
            return !closing
        }

        private func loop() {
            while true {
                condition.lock()
                while jobs.isEmpty && !closing {
                    condition.wait()
                }
                if jobs.isEmpty {
                    condition.unlock()
                    break
                }
                let work = jobs
                jobs.removeAll(keepingCapacity: true)
                condition.unlock()
                for job in work { job(connection) }
            }
            connection = nil  // its deinit closes the database
            condition.lock()
            closed = true
            let waiters = closeWaiters
            closeWaiters.removeAll()
            condition.unlock()
            for waiter in waiters { waiter.resume() }
        }
    }
}
