import BrokerTestSupport
import Foundation

extension GatewayProcess {
    /// How many times `text` occurs in what the current run logged.
    func currentRunLogCount(of text: String) -> Int {
        currentRunLog.components(separatedBy: text).count - 1
    }

    /// Waits until `text` occurs at least `occurrences` times in what the current run logged.
    func waitForLog(_ text: String, occurrences: Int = 1, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while currentRunLogCount(of: text) < occurrences {
            if ContinuousClock.now >= deadline {
                throw HarnessError.timeout(
                    "\(occurrences)× '\(text)' in the daemon's log (seen \(currentRunLogCount(of: text)))",
                    details: logTail())
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

extension GatewayProcess {
    /// `outbox stats --json`, polled until `condition` holds or `timeout` passes; returns the last
    /// stats either way, for the test to assert on.
    func outboxStats(
        waitingUntil condition: ([String: Any]) -> Bool, timeout: Duration = .seconds(20)
    ) async throws -> [String: Any] {
        var stats = try await outboxStats()
        let deadline = ContinuousClock.now + timeout
        while !condition(stats), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            stats = try await outboxStats()
        }
        return stats
    }
}
