import Foundation
import GatewayCore
import SQLite
import Synchronization

/// The hub's own list of registered devices (SQLite), written by the saga's second step. Reads
/// and commits run on the registry's own thread (``SQLiteStore``); what the per-message paths ask
/// (`isRegistered`, `registeredUser`) is answered from memory.
public final class LocalRegistry: Sendable {
    public struct Device: Sendable, Equatable {
        public var device: DeviceID
        public var userID: String
        public var type: String
        public var premium: Bool
        public var requestID: String
    }

    private let store: SQLiteStore
    /// The registered devices, kept in memory: ingress asks for every event
    /// (`devices.requireRegistration`) and the dialog for the user of every session, which must
    /// not cost a query (nor wait for the store's thread). Updated after each commit.
    private let registered: Mutex<[String: Device]>

    public init(path: String) throws(SQLiteError) {
        let connection = try SQLiteConnection.openStore(
            path: path, synchronous: .full,
            schema: """
            CREATE TABLE IF NOT EXISTS devices (
                device_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                type TEXT NOT NULL,
                premium INTEGER NOT NULL,
                request_id TEXT NOT NULL,
                registered_at INTEGER NOT NULL
            );
            """)
        var devices: [String: Device] = [:]
        let select = try connection.statement("SELECT device_id, user_id, type, premium, request_id FROM devices")
        while try select.step() {
            if let id = DeviceID(select.text(0)) {
                devices[id.rawValue] = Device(device: id, userID: select.text(1), type: select.text(2), premium: select.int64(3) != 0, requestID: select.text(4))
            }
        }
        select.reset()
        self.store = SQLiteStore(taking: connection, name: "registry")
        self.registered = Mutex(devices)
    }

    /// Whether `device` has a registration on this hub (from memory).
    public func isRegistered(_ device: DeviceID) -> Bool {
        registered.withLock { $0[device.rawValue] != nil }
    }

    /// The user `device` is registered to (from memory).
    public func registeredUser(_ device: DeviceID) -> String? {
        registered.withLock { $0[device.rawValue]?.userID }
    }

    /// The registered devices by id (from memory).
    public var registeredDevices: [Device] {
        registered.withLock { $0.values.sorted { $0.device.rawValue < $1.device.rawValue } }
    }

    public var count: Int { registered.withLock { $0.count } }

    /// Records the device for `request`. Repeating it for the same request is harmless; a device
    /// registered by another request is refused.
    public func record(_ request: RegistrationRequest) async throws(StepError) {
        do {
            try await store.write { connection throws(SQLiteError) in
                let insert = try connection.statement(
                    "INSERT INTO devices (device_id, user_id, type, premium, request_id, registered_at) VALUES (?, ?, ?, ?, ?, ?) "
                        + "ON CONFLICT (device_id) DO NOTHING")
                defer { insert.reset() }
                try insert.bind(1, request.device.rawValue)
                try insert.bind(2, request.userID)
                try insert.bind(3, request.type)
                try insert.bind(4, Int64(request.premium ? 1 : 0))
                try insert.bind(5, request.requestID)
                try insert.bind(6, Int64(Date().timeIntervalSince1970 * 1000))
                _ = try insert.step()
            }
        } catch {
            throw StepError(.unavailable, "local registry: \(error)")
        }
        guard let existing = await device(request.device) else { throw StepError(.unavailable, "local registry: the record did not stick") }
        guard existing.requestID == request.requestID else {
            throw StepError(.refused, "device \(request.device) is already registered (to user \(existing.userID))")
        }
        registered.withLock { $0[request.device.rawValue] = existing }
    }

    /// Deletes the record made by `request` (not one made by another request).
    public func delete(_ request: RegistrationRequest) async throws(StepError) {
        do {
            try await store.write { connection throws(SQLiteError) in
                let delete = try connection.statement("DELETE FROM devices WHERE device_id = ? AND request_id = ?")
                defer { delete.reset() }
                try delete.bind(1, request.device.rawValue)
                try delete.bind(2, request.requestID)
                _ = try delete.step()
            }
        } catch {
            throw StepError(.unavailable, "local registry: \(error)")
        }
        let remains = await device(request.device) != nil
        if !remains { registered.withLock { _ = $0.removeValue(forKey: request.device.rawValue) } }
    }

    /// The record of `id` (from the database).
    public func device(_ id: DeviceID) async -> Device? {
        try? await store.read { connection -> Device? in
            guard let select = try? connection.statement("SELECT user_id, type, premium, request_id FROM devices WHERE device_id = ?") else { return nil }
            defer { select.reset() }
            guard (try? select.bind(1, id.rawValue)) != nil, (try? select.step()) == true else { return nil }
            return Device(device: id, userID: select.text(0), type: select.text(1), premium: select.int64(2) != 0, requestID: select.text(3))
        }
    }

    /// Every record, by device id (from the database).
    public var all: [Device] {
        get async {
            (try? await store.read { connection -> [Device] in
                guard let select = try? connection.statement("SELECT device_id, user_id, type, premium, request_id FROM devices ORDER BY device_id") else { return [] }
                defer { select.reset() }
                var devices: [Device] = []
                while (try? select.step()) == true {
                    if let id = DeviceID(select.text(0)) {
                        devices.append(Device(device: id, userID: select.text(1), type: select.text(2), premium: select.int64(3) != 0, requestID: select.text(4)))
                    }
                }
                return devices
            }) ?? []
        }
    }
}
