import Foundation
import SQLite

/// Read-only access to an outbox file while a daemon may be writing it, on a connection of its own
/// (the CLI, and the admin API, whose slower queries must not hold up the forwarder's reads).
public struct OutboxInspector: Sendable {
    private let reader: OutboxReader

    /// Opens `path` read-only; fails if it does not exist or is not an outbox.
    public init(path: String) throws {
        try self.init(path: path, tallies: nil, uncommitted: nil)
    }

    /// With a running outbox's per-device counts (``Outbox/makeInspector()``).
    init(path: String, tallies: DeviceTallies?, uncommitted: UncommittedView?) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw OutboxError(.openFailed, "no outbox at \(path)")
        }
        do {
            reader = try OutboxReader(
                path: path, readOnly: true, tallies: tallies, uncommitted: uncommitted,
                logPath: uncommitted == nil ? path + "-events" : nil)
        } catch let error as SQLiteError {
            throw OutboxError(error.isCorruption ? .corrupt : .openFailed, "\(path): \(error)")
        }
    }

    public func stats() async throws -> OutboxStats {
        do { return try await reader.stats() } catch let error as SQLiteError {
            throw OutboxError(error.isCorruption ? .corrupt : .io, "\(error)")
        }
    }

    /// Seconds the oldest stored event has waited (nil when the outbox is empty).
    public func oldestAgeSeconds() async throws -> Double? {
        do {
            guard let receivedAt = try await reader.oldestReceivedAt() else { return nil }
            return max(0, Date().timeIntervalSince1970 - Double(receivedAt) / 1000)
        } catch let error as SQLiteError {
            throw OutboxError(error.isCorruption ? .corrupt : .io, "\(error)")
        }
    }

    /// The oldest `limit` events, of one device or of all.
    public func peek(device: String?, limit: Int) async throws -> [StoredEvent] {
        do { return try await reader.peek(device: device, limit: limit) } catch let error as SQLiteError {
            throw OutboxError(error.isCorruption ? .corrupt : .io, "\(error)")
        }
    }
}
