import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import SQLite

/// The durable queue between device ingress and the upstream forwarder.
///
/// Guarantees:
/// - ``append(_:)`` returns `.stored` only after the transaction holding the event has committed
///   (with `synchronous=FULL`, after fsync).
/// - `(device, eventId)` is stored at most once within `dedupRetentionSeconds`, also after the
///   event was forwarded and removed.
/// - Sequence numbers only grow, so reading in `seq` order keeps every device's order.
/// - The backlog lives in the file; memory does not grow with it.
///
/// ```swift
/// let outbox = try Outbox.open(configuration: .init(path: "/var/lib/edge-gateway/outbox.db"), logger: logger)
/// let outcomes = await outbox.append([record])
/// let batch = try await outbox.pending(after: 0, limit: 100)
/// outbox.remove(batch.map(\.seq))
/// ```
///
/// `Outbox` is a `Service`: its `run()` schedules maintenance (expiry, dedup pruning) and, on
/// graceful shutdown, flushes what is queued and closes the file. Put it first in the service
/// group so it stops last.
public final class Outbox: Service, Sendable {
    public let configuration: OutboxConfiguration
    private let logger: Logger
    private let writer: OutboxWriter
    private let reader: OutboxReader
    private let state: StateBox
    private let commits: AsyncStream<Int64>
    private let commitsContinuation: AsyncStream<Int64>.Continuation
    private let failures: AsyncStream<OutboxError>
    private let failuresContinuation: AsyncStream<OutboxError>.Continuation

    struct State {
        var lastSeq: Int64
        var count: Int64
        var bytes: Int64
        var closed = false
    }

    /// Shared between the outbox and the writer's commit callback.
    final class StateBox: Sendable {
        let mutex = Mutex(State(lastSeq: 0, count: 0, bytes: 0))
        func withLock<T>(_ body: (inout State) -> T) -> T { mutex.withLock { body(&$0) } }
    }

    private init(configuration: OutboxConfiguration, logger: Logger, db: SQLiteConnection) throws {
        self.configuration = configuration
        self.logger = logger
        (commits, commitsContinuation) = AsyncStream.makeStream(of: Int64.self, bufferingPolicy: .bufferingNewest(1))
        (failures, failuresContinuation) = AsyncStream.makeStream(of: OutboxError.self, bufferingPolicy: .bufferingNewest(1))
        let state = StateBox()
        let commitsContinuation = self.commitsContinuation
        let failuresContinuation = self.failuresContinuation
        writer = try OutboxWriter(
            db: db, configuration: configuration, logger: logger,
            onCommit: { lastSeq, count, bytes in
                let advanced = state.withLock { state in
                    let advanced = lastSeq > state.lastSeq
                    state.lastSeq = lastSeq
                    state.count = count
                    state.bytes = bytes
                    return advanced
                }
                if advanced { commitsContinuation.yield(lastSeq) }
            },
            onFailure: { error in failuresContinuation.yield(error) })
        let initial = writer.initialTotals
        state.withLock { $0 = State(lastSeq: initial.lastSeq, count: initial.count, bytes: initial.bytes) }
        self.state = state
        reader = try OutboxReader(path: configuration.path, tallies: writer.tallies, uncommitted: writer.uncommitted)
        writer.start()
    }

    /// Opens the outbox at `configuration.path`, creating it and its directory if needed.
    ///
    /// A file that SQLite reports as corrupt or not a database is moved aside to
    /// `<name>.corrupt-<UTC timestamp>` (with its `-wal` and `-shm`), an error is logged, and a
    /// fresh store is created, so the gateway keeps running.
    public static func open(configuration: OutboxConfiguration, logger: Logger) throws -> Outbox {
        let url = URL(fileURLWithPath: configuration.path)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw OutboxError(.openFailed, "cannot create directory for \(configuration.path): \(error.localizedDescription)")
        }
        do {
            return try openOnce(configuration: configuration, logger: logger)
        } catch let error as SQLiteError where error.isCorruption {
            let moved = try quarantine(path: configuration.path)
            try? FileManager.default.removeItem(atPath: checkMarkerPath(configuration.path))
            logger.error(
                "outbox database is corrupt; moved aside and starting with an empty store",
                metadata: ["error": "\(error)", "store.path": "\(configuration.path)", "quarantined": "\(moved)"])
            return try openOnce(configuration: configuration, logger: logger)
        } catch let error as OutboxError {
            throw error
        } catch {
            throw OutboxError(.openFailed, "\(configuration.path): \(error)")
        }
    }

    private static func openOnce(configuration: OutboxConfiguration, logger: Logger) throws -> Outbox {
        let db = try SQLiteConnection.open(path: configuration.path, readOnly: false)
        // The first statements read the header and the schema: a damaged file fails here.
        let mode = try db.scalarText("PRAGMA journal_mode=WAL")
        guard mode?.lowercased() == "wal" else {
            throw OutboxError(.openFailed, "cannot switch \(configuration.path) to WAL (got \(mode ?? "nil"))")
        }
        try db.execute("PRAGMA synchronous=\(configuration.synchronous == .full ? "FULL" : "NORMAL")")
        try db.execute("PRAGMA temp_store=MEMORY")
        // Keep the WAL from growing without bound on the SD card after bursts.
        try db.execute("PRAGMA journal_size_limit=\(16 * 1024 * 1024)")
        let pageSize = try db.scalarInt("PRAGMA page_size") ?? 4096
        // A checkpoint may have to grow the database by up to the WAL's size: keep the WAL within
        // what the disk reserve can cover (SQLite's default of 1000 pages otherwise).
        if configuration.reserveBytes > 0 {
            let pages = min(max(configuration.reserveBytes / 2 / pageSize, 16), 1000)
            try db.execute("PRAGMA wal_autocheckpoint=\(pages)")
        }
        try db.execute("PRAGMA max_page_count=\(max(configuration.effectiveMaxFileBytes / pageSize, 64))")
        try OutboxSchema.migrate(db)
        _ = try db.scalarInt("SELECT count(*) FROM sqlite_schema")
        // Opening reads only the header and the schema, so start-up stays fast with a large
        // backlog. After a run that hit corruption, check every page before trusting the file.
        let marker = checkMarkerPath(configuration.path)
        if FileManager.default.fileExists(atPath: marker) {
            let result = try db.scalarText("PRAGMA quick_check(1)") ?? "no result"
            guard result == "ok" else { throw SQLiteError.corrupt("quick_check: \(result)") }
            try? FileManager.default.removeItem(atPath: marker)
            logger.info("outbox passed its integrity check", metadata: ["store.path": "\(configuration.path)"])
        }
        return try Outbox(configuration: configuration, logger: logger, db: db)
    }

    /// A file beside the database that asks the next start for a full integrity check.
    static func checkMarkerPath(_ path: String) -> String { path + ".needs-check" }

    /// Renames the database and its WAL/SHM files to `<name>.corrupt-<timestamp>`; returns the new name.
    static func quarantine(path: String) throws -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
        let stamp = formatter.string(from: Date()).replacingOccurrences(of: ":", with: "")
        let target = "\(path).corrupt-\(stamp)"
        let manager = FileManager.default
        do {
            try manager.moveItem(atPath: path, toPath: target)
            for suffix in ["-wal", "-shm"] where manager.fileExists(atPath: path + suffix) {
                try manager.moveItem(atPath: path + suffix, toPath: target + suffix)
            }
        } catch {
            throw OutboxError(.openFailed, "cannot move corrupt database \(path) aside: \(error.localizedDescription)")
        }
        return target
    }

    // MARK: - Writing

    /// Appends records in one group commit and returns one outcome per record, in order.
    /// Returns only after the commit (or the failure) is final.
    public func append(_ records: [OutboxRecord]) async -> [AppendOutcome] {
        guard !records.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            writer.enqueue(.append(records, { continuation.resume(returning: $0) }))
        }
    }

    /// Queues records for the next group commit and calls `completion` with one outcome per
    /// record once that commit (or its failure) is final. Calls are committed in the order they
    /// are made, which is what keeps a device's events in order when several batches are in
    /// flight. `completion` runs on the writer thread: keep it short (hand the result on).
    public func append(_ records: [OutboxRecord], completion: @escaping @Sendable ([AppendOutcome]) -> Void) {
        guard !records.isEmpty else { return completion([]) }
        writer.enqueue(.append(records, completion))
    }

    /// Deletes forwarded events. Applied with the next group commit; a crash before that only
    /// means they are forwarded again (at least once).
    public func remove(_ seqs: [Int64]) {
        guard !seqs.isEmpty else { return }
        writer.enqueue(.remove(seqs))
    }

    /// Returns once everything queued before this call (removals included) is committed, or the
    /// store has failed or closed.
    public func waitForQueuedWrites() async {
        await withCheckedContinuation { continuation in
            writer.enqueue(.append([], { _ in continuation.resume() }))
        }
    }

    /// Counts rejected device messages by reason; persisted with the next commit.
    public func countRejects(_ rejects: [String: Int64]) {
        guard !rejects.isEmpty else { return }
        writer.addCounters(Dictionary(uniqueKeysWithValues: rejects.map { ("reject.\($0.key)", $0.value) }))
    }

    // MARK: - Reading

    /// Up to `limit` stored events with `seq > after`, oldest first.
    public func pending(after seq: Int64, limit: Int) async throws -> [StoredEvent] {
        try await reader.pending(after: seq, limit: limit)
    }

    /// The newest committed sequence number each time a commit stores new events. Only the newest
    /// value is buffered, so a slow reader never makes this grow. One consumer (the forwarder).
    public var committedSequences: AsyncStream<Int64> { commits }

    /// Open and not failed: appends are taken.
    public var isOpen: Bool { state.withLock { !$0.closed } }

    /// Depth and bytes as of the last commit, without touching the disk.
    public var depth: (count: Int64, bytes: Int64, lastSeq: Int64) {
        state.withLock { ($0.count, $0.bytes, $0.lastSeq) }
    }

    /// How long queued work has waited for the writer; zero when it is idle. The watchdog stops
    /// pinging systemd when this grows past its interval, so a wedged store gets the process restarted.
    public var writerStalledFor: Duration { writer.stalledFor }

    /// Seconds the oldest stored event has waited (nil when the outbox is empty); one indexed row read.
    public func oldestAgeSeconds() async throws -> Double? {
        guard let receivedAt = try await reader.oldestReceivedAt() else { return nil }
        return max(0, Date().timeIntervalSince1970 - Double(receivedAt) / 1000)
    }

    /// A read-only view on a connection of its own (for the admin API, whose queries must not hold
    /// up the forwarder's reads) that takes the per-device list from this outbox's counts in memory
    /// instead of grouping the whole table.
    public func makeInspector() throws -> OutboxInspector {
        try OutboxInspector(path: configuration.path, tallies: writer.tallies, uncommitted: writer.uncommitted)
    }

    /// Whether the per-device counts are complete (a store opened with a backlog is counted in
    /// the background first; until then the per-device list comes from a query).
    var perDeviceCountsReady: Bool { !writer.tallies.isScanning }

    /// Full statistics (per device, oldest age, drops, rejects).
    public func stats() async throws -> OutboxStats {
        try await reader.stats()
    }

    // MARK: - Lifecycle

    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [failures] in
                for await failure in failures {
                    throw failure
                }
            }
            group.addTask { [writer, configuration] in
                let interval = Duration.seconds(max(configuration.maintenanceIntervalSeconds, 1))
                try? await cancelWhenGracefulShutdown {
                    while !Task.isCancelled {
                        writer.enqueue(.maintenance)
                        try await Task.sleep(for: interval)
                    }
                }
            }
            // Either the maintenance loop ends on shutdown, or a failure throws.
            _ = try await group.next()
            group.cancelAll()
        }
        await close()
    }

    /// Commits what is queued, checkpoints and closes. Appends after this are rejected.
    public func close() async {
        let alreadyClosed = state.withLock { state in
            defer { state.closed = true }
            return state.closed
        }
        guard !alreadyClosed else { return }
        await writer.close()
        commitsContinuation.finish()
        failuresContinuation.finish()
        logger.info("outbox closed", metadata: ["outbox.depth": "\(depth.count)"])
    }
}
