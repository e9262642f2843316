import Logging
import Testing

@testable import MQTT

@Suite struct ReconnectBackoffTests {
    let backoff = ReconnectBackoff(baseMilliseconds: 500, capMilliseconds: 30_000)

    @Test func theFirstRetriesAreQuickSoABrokerThatComesUpIsUsedWithinASecond() {
        #expect(backoff.ceiling(attempt: 0) == 250)
        #expect(backoff.ceiling(attempt: 1) == 250)
        #expect(backoff.ceiling(attempt: 0) + backoff.ceiling(attempt: 1) + backoff.ceiling(attempt: 2) <= 1000)
        // Never slower than the base, when the base is quicker still.
        #expect(ReconnectBackoff(baseMilliseconds: 100, capMilliseconds: 5000).ceiling(attempt: 0) == 100)
    }

    @Test func withoutQuickRetriesTheFirstRetryAlreadyWaitsTheFullJitterBackoff() {
        let none = ReconnectBackoff(baseMilliseconds: 500, capMilliseconds: 30_000, quickAttempts: 0)
        #expect((0..<4).map { none.ceiling(attempt: $0) } == [500, 1000, 2000, 4000])
        #expect(none.delay(attempt: 0, unit: 0.5) == 250)
    }

    @Test func moreQuickRetriesShiftTheExponentialPart() {
        let five = ReconnectBackoff(baseMilliseconds: 500, capMilliseconds: 30_000, quickAttempts: 5)
        #expect((0..<7).map { five.ceiling(attempt: $0) } == [250, 250, 250, 250, 250, 500, 1000])
        // A negative count is none.
        #expect(ReconnectBackoff(baseMilliseconds: 500, capMilliseconds: 30_000, quickAttempts: -1).quickAttempts == 0)
    }

    @Test func thenTheCeilingDoublesPerAttemptUpToTheCap() {
        #expect(backoff.ceiling(attempt: 2) == 500)
        #expect(backoff.ceiling(attempt: 3) == 1000)
        #expect(backoff.ceiling(attempt: 7) == 16_000)
        #expect(backoff.ceiling(attempt: 8) == 30_000)
        #expect(backoff.ceiling(attempt: 1000) == 30_000)
    }

    @Test func fullJitterSpansZeroToTheCeiling() {
        #expect(backoff.delay(attempt: 5, unit: 0) == 0)
        #expect(backoff.delay(attempt: 5, unit: 1) == 4000)
        #expect(backoff.delay(attempt: 5, unit: 0.25) == 1000)
    }

    @Test func randomDelaysStayWithinBounds() {
        for attempt in 0..<20 {
            let delay = backoff.delay(attempt: attempt)
            #expect(delay >= 0 && delay <= backoff.ceiling(attempt: attempt))
        }
    }
}

/// What an operator reads when a broker cannot be reached.
@Suite struct ConnectFailureLogTests {
    @Test func oneErrorPerStreakThenRemindersThenOneLineWhenItComesBack() {
        var log = ConnectFailureLog(broker: "127.0.0.1:1883", reminderInterval: .seconds(60))
        let start = ContinuousClock.now
        #expect(log.failed(reason: "Connection refused", at: start)?.level == .error)
        for second in 1..<60 {
            #expect(log.failed(reason: "Connection refused", at: start + .seconds(second)) == nil)
        }
        let reminder = log.failed(reason: "Connection refused", at: start + .seconds(61))
        #expect(reminder?.level == .warning)
        #expect(reminder?.message.contains("61 s and 61 attempts") == true, "\(String(describing: reminder))")
        // Another reason is news at once.
        #expect(log.failed(reason: "broker refused: not authorised", at: start + .seconds(62))?.level == .error)
        #expect(log.connected(at: start + .seconds(70)) == "MQTT broker reachable again after 70 s and 62 failed attempts")
        // A new streak starts with an error again; a connection without failures says nothing.
        #expect(log.connected(at: start + .seconds(71)) == nil)
        #expect(log.failed(reason: "Connection refused", at: start + .seconds(80))?.level == .error)
    }
}
