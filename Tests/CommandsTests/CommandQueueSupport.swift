import Commands
import Foundation
import GatewayCore
import Logging
import Testing

/// A queue's SQLite file in a directory of the test's own, removed with the test (the suite
/// object holding it ends with its test).
final class TemporaryStore: Sendable {
    /// This test's directory, removed when the test is over.
    let directory = NSTemporaryDirectory() + "commands-test-\(UUID().uuidString)"
    var path: String { directory + "/commands.db" }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func open(_ configure: (inout CommandsConfiguration) -> Void = { _ in }) async throws -> CommandQueue {
        var configuration = CommandsConfiguration()
        configure(&configuration)
        return try await CommandQueue.open(path: path, configuration: configuration, logger: Logger(label: "commands-test"))
    }
}

/// Devices, times and helpers of the queue tests.
enum Bed {
    static let deviceA = DeviceID("dev-a")!
    static let deviceB = DeviceID("dev-b")!
    static let t0: Int64 = 1_700_000_000_000
    static let online: @Sendable (DeviceID) -> Bool = { _ in true }
    static let offline: @Sendable (DeviceID) -> Bool = { _ in false }

    static func payload(_ id: String, name: String = "blink", _ extra: String = "") -> [UInt8] {
        Array(#"{"commandId":"\#(id)","name":"\#(name)"\#(extra)}"#.utf8)
    }

    static func resultPayload(_ id: String, _ status: String, _ extra: String = "") -> [UInt8] {
        Array(#"{"commandId":"\#(id)","status":"\#(status)"\#(extra)}"#.utf8)
    }

    /// Receives `id` for `device` and expects it queued.
    @discardableResult
    static func queue(
        _ queue: CommandQueue, _ id: String, device: DeviceID = deviceA, at now: Int64 = t0, _ extra: String = "",
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> CommandRecord {
        let outcome = try await queue.receive(device: device, payload: payload(id, extra), nowMs: now)
        guard case .queued(let record) = outcome else {
            Issue.record("not queued: \(outcome)", sourceLocation: sourceLocation)
            throw CancellationError()
        }
        return record
    }

    static func ids(_ deliveries: [CommandDelivery]) -> [String] {
        deliveries.map { "\($0.device)/\($0.commandID)" }
    }

    /// Sends what is due at `now` and returns what was sent.
    static func sendDue(_ queue: CommandQueue, at now: Int64, isOnline: @Sendable (DeviceID) -> Bool = online) async throws -> [String] {
        let due = await queue.due(nowMs: now, isOnline: isOnline)
        try await queue.markSent(due.map(\.record.key), nowMs: now)
        return ids(due)
    }

    static func status(_ outcome: ResultOutcome) -> CommandStatus? {
        if case .changed(let record) = outcome { return record.status }
        return nil
    }

    static func ignoredReason(_ outcome: ResultOutcome) -> IgnoredResult.Reason? {
        if case .ignored(let ignored) = outcome { return ignored.reason }
        return nil
    }
}
