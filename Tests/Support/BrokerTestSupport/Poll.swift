import Foundation

/// Waits for a condition by polling it, with a bound: the tests' substitute for a sleep, which would
/// synchronise on wall-clock time instead of on what happened.
public enum Poll {
    /// Returns once `condition` holds; throws `HarnessError.timeout` when it still does not after
    /// `timeout`, with `details()` (a log tail, say) in the message.
    public static func until(
        _ what: String, timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(20),
        details: () -> String = { "" }, _ condition: () throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while try !condition() {
            if ContinuousClock.now >= deadline { throw HarnessError.timeout(what, details: details()) }
            try await Task.sleep(for: interval)
        }
    }

    /// ``until(_:timeout:every:details:_:)`` for a condition that must itself wait (a store's read).
    public static func until(
        _ what: String, timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(20),
        asking condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            if ContinuousClock.now >= deadline { throw HarnessError.timeout(what, details: "") }
            try await Task.sleep(for: interval)
        }
    }
}
