import Foundation
import GatewayCore
import SQLite

/// The durable record of registration sagas (SQLite, its own file): each step and compensation is
/// written before it runs and after it finishes, so a saga cut short by a crash is resumed or
/// compensated at the next start, and a repeated request id is answered from the record.
/// Every read and commit runs on the store's own thread (``SQLiteStore``), never on Swift's
/// cooperative pool.
public final class SagaStore: Sendable {
    public enum State: String, Sendable {
        case running, compensating, completed, failed
        case needsAttention = "needs-attention"
    }

    public enum Phase: String, Sendable {
        case begin, done, failed
        case compensating = "compensate-begin"
        case compensated
        case compensationFailed = "compensation-failed"
    }

    /// A saga as recorded.
    public struct Record: Sendable, Equatable {
        public var request: RegistrationRequest
        /// The device's broker password; nil once wiped (`registration.passwordRetentionSeconds`).
        public var password: String?
        public var state: State
        public var reason: String?
        public var registryID: String?
        /// Steps that completed and are not compensated.
        public var done: [RegistrationStep]
        /// A step that began and has no end recorded (it may or may not have happened).
        public var inDoubt: RegistrationStep?
        /// Steps whose compensation finished.
        public var compensated: [RegistrationStep]
        /// Steps whose compensation gave up.
        public var compensationFailed: [RegistrationStep]
    }

    private let store: SQLiteStore

    public init(path: String) throws(SQLiteError) {
        let store = try SQLiteStore(
            path: path, synchronous: .full,
            schema: """
            CREATE TABLE IF NOT EXISTS sagas (
                request_id TEXT PRIMARY KEY,
                device_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                type TEXT NOT NULL,
                premium INTEGER NOT NULL,
                password TEXT NOT NULL,
                state TEXT NOT NULL,
                reason TEXT,
                registry_id TEXT,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS saga_log (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                request_id TEXT NOT NULL,
                step TEXT NOT NULL,
                phase TEXT NOT NULL,
                detail TEXT,
                at INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS saga_log_request ON saga_log (request_id, seq);
            CREATE INDEX IF NOT EXISTS sagas_state ON sagas (state);
            """,
            name: "saga")
        // Generated broker passwords are kept to answer a repeated request: owner-only file.
        if path != ":memory:" { chmod(path, 0o600) }
        self.store = store
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Records a new saga; returns the existing record instead when the request id is known (in
    /// one statement, so two requests with the same id cannot both begin).
    public func begin(_ request: RegistrationRequest, password: String) async throws(SQLiteError) -> Record? {
        let inserted = try await store.write { connection throws(SQLiteError) -> Bool in
            let insert = try connection.statement(
                "INSERT INTO sagas (request_id, device_id, user_id, type, premium, password, state, created_at, updated_at) "
                    + "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?) ON CONFLICT (request_id) DO NOTHING")
            defer { insert.reset() }
            try insert.bind(1, request.requestID)
            try insert.bind(2, request.device.rawValue)
            try insert.bind(3, request.userID)
            try insert.bind(4, request.type)
            try insert.bind(5, Int64(request.premium ? 1 : 0))
            try insert.bind(6, password)
            try insert.bind(7, Self.now)
            try insert.bind(8, Self.now)
            _ = try insert.step()
            return connection.changes > 0
        }
        return inserted ? nil : try await record(request.requestID)
    }

    /// Wipes the passwords of finished sagas (completed, failed, needs-attention) that finished
    /// before `beforeMs` (ms since epoch); returns how many.
    @discardableResult
    public func wipePasswords(finishedBefore beforeMs: Int64) async throws(SQLiteError) -> Int {
        try await store.write { connection throws(SQLiteError) -> Int in
            let update = try connection.statement(
                "UPDATE sagas SET password = '' WHERE password != '' AND state IN ('completed', 'failed', 'needs-attention') AND updated_at < ?")
            defer { update.reset() }
            try update.bind(1, beforeMs)
            _ = try update.step()
            return connection.changes
        }
    }

    /// Deletes completed and failed sagas (and their logs) that finished before `beforeMs`;
    /// those in `needs-attention` stay until a person has seen to them. Returns how many.
    @discardableResult
    public func prune(finishedBefore beforeMs: Int64) async throws(SQLiteError) -> Int {
        try await store.write { connection throws(SQLiteError) -> Int in
            let logs = try connection.statement(
                "DELETE FROM saga_log WHERE request_id IN (SELECT request_id FROM sagas WHERE state IN ('completed', 'failed') AND updated_at < ?)")
            defer { logs.reset() }
            try logs.bind(1, beforeMs)
            _ = try logs.step()
            let sagas = try connection.statement("DELETE FROM sagas WHERE state IN ('completed', 'failed') AND updated_at < ?")
            defer { sagas.reset() }
            try sagas.bind(1, beforeMs)
            _ = try sagas.step()
            return connection.changes
        }
    }

    /// Appends one entry to the saga's log (committed before the call returns).
    public func log(_ requestID: String, _ step: RegistrationStep, _ phase: Phase, detail: String? = nil) async throws(SQLiteError) {
        try await store.write { connection throws(SQLiteError) in
            let insert = try connection.statement("INSERT INTO saga_log (request_id, step, phase, detail, at) VALUES (?, ?, ?, ?, ?)")
            defer { insert.reset() }
            try insert.bind(1, requestID)
            try insert.bind(2, step.rawValue)
            try insert.bind(3, phase.rawValue)
            try insert.bind(4, detail ?? "")
            try insert.bind(5, Self.now)
            _ = try insert.step()
        }
    }

    public func setState(_ requestID: String, _ state: State, reason: String? = nil) async throws(SQLiteError) {
        try await store.write { connection throws(SQLiteError) in
            let update = try connection.statement("UPDATE sagas SET state = ?, reason = coalesce(?, reason), updated_at = ? WHERE request_id = ?")
            defer { update.reset() }
            try update.bind(1, state.rawValue)
            if let reason { try update.bind(2, reason) } else { try update.bindNull(2) }
            try update.bind(3, Self.now)
            try update.bind(4, requestID)
            _ = try update.step()
        }
    }

    public func setRegistryID(_ requestID: String, _ registryID: String) async throws(SQLiteError) {
        try await store.write { connection throws(SQLiteError) in
            let update = try connection.statement("UPDATE sagas SET registry_id = ?, updated_at = ? WHERE request_id = ?")
            defer { update.reset() }
            try update.bind(1, registryID)
            try update.bind(2, Self.now)
            try update.bind(3, requestID)
            _ = try update.step()
        }
    }

    /// The saga of `requestID`, with its steps folded from the log.
    public func record(_ requestID: String) async throws(SQLiteError) -> Record? {
        try await store.read { connection throws(SQLiteError) -> Record? in
            let select = try connection.statement(
                "SELECT device_id, user_id, type, premium, password, state, reason, registry_id FROM sagas WHERE request_id = ?")
            defer { select.reset() }
            try select.bind(1, requestID)
            guard try select.step(), let device = DeviceID(select.text(0)) else { return nil }
            let request = RegistrationRequest(
                requestID: requestID, device: device, userID: select.text(1), type: select.text(2), premium: select.int64(3) != 0)
            var record = Record(
                request: request, password: select.text(4).isEmpty ? nil : select.text(4), state: State(rawValue: select.text(5)) ?? .running,
                reason: select.isNull(6) ? nil : select.text(6), registryID: select.isNull(7) ? nil : select.text(7),
                done: [], inDoubt: nil, compensated: [], compensationFailed: [])
            let log = try connection.statement("SELECT step, phase FROM saga_log WHERE request_id = ? ORDER BY seq")
            defer { log.reset() }
            try log.bind(1, requestID)
            while try log.step() {
                guard let step = RegistrationStep(rawValue: log.text(0)), let phase = Phase(rawValue: log.text(1)) else { continue }
                switch phase {
                case .begin:
                    record.inDoubt = step
                case .done:
                    record.inDoubt = nil
                    if !record.done.contains(step) { record.done.append(step) }
                case .failed:
                    record.inDoubt = nil
                case .compensating:
                    break
                case .compensated:
                    record.done.removeAll { $0 == step }
                    record.compensated.append(step)
                    if record.inDoubt == step { record.inDoubt = nil }
                case .compensationFailed:
                    record.compensationFailed.append(step)
                }
            }
            return record
        }
    }

    /// Request ids of sagas that did not finish (running or compensating), oldest first.
    public func unfinished() async throws(SQLiteError) -> [String] {
        try await requestIDs(where: "state IN ('running', 'compensating')")
    }

    /// Request ids of sagas left in `needs-attention`.
    public func needingAttention() async throws(SQLiteError) -> [String] {
        try await requestIDs(where: "state = 'needs-attention'")
    }

    private func requestIDs(where condition: String) async throws(SQLiteError) -> [String] {
        try await store.read { connection throws(SQLiteError) in
            let select = try connection.statement("SELECT request_id FROM sagas WHERE \(condition) ORDER BY created_at, rowid")
            defer { select.reset() }
            var ids: [String] = []
            while try select.step() { ids.append(select.text(0)) }
            return ids
        }
    }
}
