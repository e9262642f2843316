import GatewayCore
import Logging
import Metrics
import SQLite
import Synchronization

/// The durable device shadows (CONTRACTS.md §7): one document per device in SQLite
/// (`synchronous=full`), all of them also in memory, so reads never wait for the disk.
///
/// Every change is computed and committed on the store's own thread (``SQLiteStore``), one after
/// the other, and only then shown in memory and returned: a returned ``ShadowOutcome/applied(_:delta:)``
/// survives a kill -9 or a power cut, and two changes of one device can never both start from the
/// same version. Reads (``document(_:)``, ``delta(_:)``, ``unreported()``, ``undeliveredDeltas()``)
/// are answered from memory.
///
/// ```swift
/// let shadows = try ShadowStore(path: "/var/lib/edge-gateway/shadows.db", configuration: .init(), logger: logger)
/// switch try await shadows.updateDesired(device, message: payload, nowMs: now) {
/// case .applied(let document, let delta): …  // whole document upstream; delta to the device when not empty
/// case .unchanged: …
/// case .conflict(let refusal), .rejected(let refusal): …  // refusal.encoded() on …/rejected
/// }
/// ```
public final class ShadowStore: Sendable {
    public let configuration: ShadowConfiguration
    private let store: SQLiteStore
    /// The documents by device, as their JSON (``StoredShadow``): written only on the store's
    /// thread, after a commit.
    private let documents: Mutex<[DeviceID: StoredShadow]>
    private let metrics: ShadowMetrics
    private let logger: Logger
    private let problemLog: ShadowProblemLog

    static let schema = """
        CREATE TABLE IF NOT EXISTS shadows (
            device_id TEXT PRIMARY KEY,
            desired TEXT NOT NULL,
            reported TEXT NOT NULL,
            version INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            desired_version INTEGER NOT NULL,
            reported_version INTEGER NOT NULL,
            delta_sent_version INTEGER NOT NULL
        );
        """

    /// Opens (or creates) the store at `path` and loads every document (on the calling thread:
    /// this happens once, at start). A row that cannot be read back (damaged by hand) is logged
    /// at error and left out; the device's next change replaces it.
    public init(
        path: String, configuration: ShadowConfiguration, logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) throws(ShadowError) {
        let connection: SQLiteConnection
        var loaded: [DeviceID: StoredShadow] = [:]
        do {
            connection = try SQLiteConnection.openStore(path: path, synchronous: .full, schema: Self.schema)
            let select = try connection.statement(
                "SELECT device_id, desired, reported, version, updated_at, desired_version, reported_version, delta_sent_version FROM shadows")
            defer { select.reset() }
            while try select.step() {
                let id = select.text(0)
                guard let device = DeviceID(id),
                    case .object(let desired)? = try? JSONValue.parse(Array(select.text(1).utf8), maxBytes: .max),
                    case .object(let reported)? = try? JSONValue.parse(Array(select.text(2).utf8), maxBytes: .max)
                else {
                    logger.error("shadow row unreadable, left out", metadata: ["device.id": "\(DeviceID.escapedForLog(id.utf8))"])
                    continue
                }
                loaded[device] = StoredShadow(
                    ShadowDocument(
                        device: device, desired: desired, reported: reported, version: select.int64(3), updatedAt: select.int64(4),
                        desiredVersion: select.int64(5), reportedVersion: select.int64(6), deltaSentVersion: select.int64(7)))
            }
        } catch {
            throw ShadowError(.openFailed, "shadow store \(path): \(error)")
        }
        self.configuration = configuration
        self.store = SQLiteStore(taking: connection, name: "shadow")
        self.documents = Mutex(loaded)
        self.metrics = ShadowMetrics(factory: metricsFactory)
        self.logger = logger
        self.problemLog = ShadowProblemLog(logger: logger)
        metrics.documents.record(loaded.count)
        if loaded.count > configuration.maxDevices {
            logger.warning(
                "more shadows stored than shadow.maxDevices: new devices are refused",
                metadata: ["shadow.documents": "\(loaded.count)", "shadow.max_devices": "\(configuration.maxDevices)"])
        }
    }

    /// Finishes what is queued and closes the database.
    public func close() async {
        await store.close()
    }

    // MARK: - Reads (from memory)

    /// The device's document; the empty one (version 0, `updatedAt` 0) when it has none.
    public func document(_ device: DeviceID) -> ShadowDocument {
        documents.withLock { $0[device] }?.document ?? ShadowDocument(device: device)
    }

    /// The device's whole document as JSON, as ``ShadowDocument/encoded()`` gives it, without
    /// parsing it (the answer to `device/{id}/shadow/get`).
    public func encodedDocument(_ device: DeviceID) -> [UInt8] {
        documents.withLock { $0[device] }?.encodedDocument ?? ShadowDocument(device: device).encoded()
    }

    /// The device's delta (empty when it has no document).
    public func delta(_ device: DeviceID) -> JSONObject {
        document(device).delta
    }

    /// Devices with a document.
    public var count: Int {
        documents.withLock { $0.count }
    }

    /// Documents whose latest version the caller has not confirmed stored for upstream
    /// (``markReported(_:version:)``), by device id: after a restart, what still has to go to the cloud.
    public func unreported() -> [ShadowDocument] {
        documents.withLock { $0.values.filter(\.isUnreported) }.sorted { $0.device.rawValue < $1.device.rawValue }.map(\.document)
    }

    /// Documents whose `desired` changed after the last delta the caller confirmed sending
    /// (``markDeltaSent(_:version:)``) and whose delta is not empty, by device id.
    public func undeliveredDeltas() -> [ShadowDocument] {
        documents.withLock { $0.values.filter(\.hasUndeliveredDelta) }.sorted { $0.device.rawValue < $1.device.rawValue }.map(\.document)
    }

    // MARK: - Changes (committed before they return)

    /// Merges a cloud update into `desired` (see ``ShadowOutcome``). A wrong expected version is a
    /// conflict, checked before anything else; a patch that changes nothing is `unchanged`; a new
    /// device over `shadow.maxDevices` or a document over `shadow.maxBytes` is refused and the
    /// old document kept. Throws only when the store cannot commit (nothing changed then).
    public func updateDesired(_ device: DeviceID, _ update: ShadowUpdate, nowMs: Int64) async throws(ShadowError) -> ShadowOutcome {
        try await change(device, .desired, patch: update.desired, expectedVersion: update.version, clientToken: update.clientToken, nowMs: nowMs)
    }

    /// Parses `message` (``ShadowUpdate/parse(_:maxBytes:)`` with `shadow.maxMessageBytes`) and
    /// applies it; a message refused by the parser is a `rejected` outcome, counted and logged
    /// like any other refusal.
    public func updateDesired(_ device: DeviceID, message: [UInt8], nowMs: Int64) async throws(ShadowError) -> ShadowOutcome {
        let update: ShadowUpdate
        do throws(ShadowRefusal) {
            update = try ShadowUpdate.parse(message, maxBytes: configuration.maxMessageBytes)
        } catch {
            return refused(device, .desired, error, nowMs: nowMs)
        }
        return try await updateDesired(device, update, nowMs: nowMs)
    }

    /// Merges a device report into `reported`: as ``updateDesired(_:_:nowMs:)`` without a version check.
    public func report(_ device: DeviceID, _ report: ShadowReport, nowMs: Int64) async throws(ShadowError) -> ShadowOutcome {
        try await change(device, .reported, patch: report.reported, expectedVersion: nil, clientToken: report.clientToken, nowMs: nowMs)
    }

    /// Parses `message` (``ShadowReport/parse(_:maxBytes:)``) and applies it, as ``updateDesired(_:message:nowMs:)``.
    public func report(_ device: DeviceID, message: [UInt8], nowMs: Int64) async throws(ShadowError) -> ShadowOutcome {
        let report: ShadowReport
        do throws(ShadowRefusal) {
            report = try ShadowReport.parse(message, maxBytes: configuration.maxMessageBytes)
        } catch {
            return refused(device, .reported, error, nowMs: nowMs)
        }
        return try await self.report(device, report, nowMs: nowMs)
    }

    /// Records that the whole document at `version` is stored for upstream (in the outbox): versions
    /// up to it are no longer ``unreported()``. A lower version than already recorded changes
    /// nothing; a higher one than the document's counts as the document's.
    public func markReported(_ device: DeviceID, version: Int64) async throws(ShadowError) {
        try await mark(device, version: version, .upstream)
    }

    /// Records that the delta of `version` was sent to the device (rules as ``markReported(_:version:)``).
    public func markDeltaSent(_ device: DeviceID, version: Int64) async throws(ShadowError) {
        try await mark(device, version: version, .deltaSent)
    }

    /// Deletes the device's document (an operator's action); true when there was one. The version
    /// is forgotten with it: the device's next change makes version 1 again.
    @discardableResult
    public func remove(_ device: DeviceID) async throws(ShadowError) -> Bool {
        let removed = try await run { connection throws(SQLiteError) -> Bool in
            let delete = try connection.statement("DELETE FROM shadows WHERE device_id = ?")
            defer { delete.reset() }
            try delete.bind(1, device.rawValue)
            try delete.step()
            return self.documents.withLock { $0.removeValue(forKey: device) != nil }
        }
        if removed {
            metrics.documents.record(count)
            logger.info("shadow removed", metadata: ["device.id": "\(device)"])
        }
        return removed
    }

    // MARK: - Internals

    private func change(
        _ device: DeviceID, _ section: ShadowSection, patch: JSONObject, expectedVersion: Int64?, clientToken: String?, nowMs: Int64
    ) async throws(ShadowError) -> ShadowOutcome {
        let configuration = configuration
        let outcome: ShadowOutcome
        do throws(ShadowError) {
            outcome = try await run { connection throws(SQLiteError) -> ShadowOutcome in
                let (current, count) = self.documents.withLock { ($0[device], $0.count) }
                var document = current?.document ?? ShadowDocument(device: device)
                if let expectedVersion, expectedVersion != document.version {
                    return .conflict(
                        ShadowRefusal(
                            .versionConflict, "expected version \(expectedVersion), the document is at \(document.version)",
                            clientToken: clientToken, version: document.version))
                }
                let old = section == .desired ? document.desired : document.reported
                let merged = MergePatch.apply(patch: patch, to: old)
                if merged == old { return .unchanged(document) }
                if current == nil, count >= configuration.maxDevices {
                    return .rejected(
                        ShadowRefusal(
                            .tooManyDevices, "\(count) devices have a shadow, shadow.maxDevices is \(configuration.maxDevices)",
                            clientToken: clientToken, version: document.version))
                }
                // Stored documents must parse back at start (the parser's depth limit; the document adds one level).
                if JSONValue.object(merged).depth >= JSONValue.defaultMaxDepth {
                    return .rejected(
                        ShadowRefusal(
                            .invalid, "\(section.rawValue) would nest deeper than \(JSONValue.defaultMaxDepth - 1) levels",
                            clientToken: clientToken, version: document.version))
                }
                let previousVersion = document.version
                if section == .desired { document.desired = merged } else { document.reported = merged }
                document.version += 1
                document.updatedAt = nowMs
                if section == .desired { document.desiredVersion = document.version }
                let stored = StoredShadow(document)
                let size = stored.encodedDocument.count
                guard size <= configuration.maxBytes else {
                    return .rejected(
                        ShadowRefusal(
                            .tooLarge, "the document would have \(size) bytes, more than shadow.maxBytes (\(configuration.maxBytes))",
                            clientToken: clientToken, version: previousVersion))
                }
                try Self.save(stored, connection)
                self.documents.withLock { $0[device] = stored }
                return .applied(document, delta: document.delta)
            }
        } catch {
            metrics.recordFailure(section: section)
            problemLog.failed(error, device: device, section: section, nowMs: nowMs)
            throw error
        }
        metrics.record(outcome, section: section)
        switch outcome {
        case .applied(let document, let delta):
            metrics.documents.record(count)
            // A change of desired is the cloud's (rare, and an operator wants it in the journal);
            // reports may come every few seconds from every device: debug.
            logger.log(
                level: section == .desired ? .info : .debug, "shadow \(section.rawValue) changed",
                metadata: [
                    "device.id": "\(device)", "shadow.version": "\(document.version)", "shadow.delta_keys": "\(delta.count)",
                ])
        case .unchanged(let document):
            logger.debug(
                "shadow \(section.rawValue) unchanged", metadata: ["device.id": "\(device)", "shadow.version": "\(document.version)"])
        case .conflict(let refusal), .rejected(let refusal):
            problemLog.refused(refusal, device: device, section: section, nowMs: nowMs)
        }
        return outcome
    }

    private func refused(_ device: DeviceID, _ section: ShadowSection, _ refusal: ShadowRefusal, nowMs: Int64) -> ShadowOutcome {
        var refusal = refusal
        refusal.version = documents.withLock { $0[device]?.version } ?? 0
        let outcome = ShadowOutcome.rejected(refusal)
        metrics.record(outcome, section: section)
        problemLog.refused(refusal, device: device, section: section, nowMs: nowMs)
        return outcome
    }

    /// The two marks of a document's bookkeeping.
    private enum Mark: Sendable {
        case upstream, deltaSent

        var sql: String {
            switch self {
            case .upstream: "UPDATE shadows SET reported_version = ? WHERE device_id = ?"
            case .deltaSent: "UPDATE shadows SET delta_sent_version = ? WHERE device_id = ?"
            }
        }

        func value(_ document: StoredShadow) -> Int64 {
            switch self {
            case .upstream: document.reportedVersion
            case .deltaSent: document.deltaSentVersion
            }
        }

        func set(_ value: Int64, _ document: inout StoredShadow) {
            switch self {
            case .upstream: document.reportedVersion = value
            case .deltaSent: document.deltaSentVersion = value
            }
        }
    }

    private func mark(_ device: DeviceID, version: Int64, _ mark: Mark) async throws(ShadowError) {
        try await run { connection throws(SQLiteError) in
            guard var document = self.documents.withLock({ $0[device] }) else { return }
            let value = min(version, document.version)
            guard value > mark.value(document) else { return }
            mark.set(value, &document)
            try connection.execute("BEGIN IMMEDIATE")
            do throws(SQLiteError) {
                let update = try connection.statement(mark.sql)
                defer { update.reset() }
                try update.bind(1, value)
                try update.bind(2, device.rawValue)
                try update.step()
                try connection.execute("COMMIT")
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
            self.documents.withLock { $0[device] = document }
        }
    }

    /// Writes the whole row of `document` in one transaction.
    private static func save(_ document: StoredShadow, _ connection: SQLiteConnection) throws(SQLiteError) {
        try connection.execute("BEGIN IMMEDIATE")
        do throws(SQLiteError) {
            let upsert = try connection.statement(
                """
                INSERT INTO shadows (device_id, desired, reported, version, updated_at, desired_version, reported_version, delta_sent_version)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (device_id) DO UPDATE SET desired = excluded.desired, reported = excluded.reported, version = excluded.version,
                    updated_at = excluded.updated_at, desired_version = excluded.desired_version,
                    reported_version = excluded.reported_version, delta_sent_version = excluded.delta_sent_version
                """)
            defer { upsert.reset() }
            try upsert.bind(1, document.device.rawValue)
            try upsert.bind(2, String(decoding: document.desired, as: UTF8.self))
            try upsert.bind(3, String(decoding: document.reported, as: UTF8.self))
            try upsert.bind(4, document.version)
            try upsert.bind(5, document.updatedAt)
            try upsert.bind(6, document.desiredVersion)
            try upsert.bind(7, document.reportedVersion)
            try upsert.bind(8, document.deltaSentVersion)
            try upsert.step()
            try connection.execute("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` on the store's thread. Each body commits its own transaction and updates memory
    /// after the commit, before the next body starts: that is what serializes the changes.
    private func run<T: Sendable>(_ body: @escaping @Sendable (SQLiteConnection) throws(SQLiteError) -> T) async throws(ShadowError) -> T {
        do {
            return try await store.read(body)
        } catch {
            if !store.isOpen { throw ShadowError(.closed, "the shadow store is closed") }
            throw ShadowError(.storage, "shadow store: \(error)")
        }
    }
}
