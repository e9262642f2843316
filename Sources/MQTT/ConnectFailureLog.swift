import Logging
import Reporting

/// How a client reports a broker it cannot reach (a ``FailureStreak``): the first failure of a streak at
/// error, with what to check; the attempts after it at debug, with a reminder at warning every
/// `reminderInterval` (how long and how many attempts); and one line when the connection finally comes up.
///
/// Network thread only (a value owned by the client's loop).
struct ConnectFailureLog {
    let broker: String
    private var streak: FailureStreak

    init(broker: String, reminderInterval: Duration = .seconds(60)) {
        self.broker = broker
        streak = FailureStreak(
            messages: FailureStreak.Messages(
                first: "cannot connect to the MQTT broker; retrying with backoff (check that it runs and listens at this address, and the credentials)",
                newReason: "cannot connect to the MQTT broker, now for another reason; retrying",
                reminder: { seconds, attempts in "still cannot connect to the MQTT broker after \(seconds) s and \(attempts) attempts" },
                recovered: { seconds, attempts in "MQTT broker reachable again after \(seconds) s and \(attempts) failed attempts" }),
            reminderInterval: reminderInterval)
    }

    var reminderInterval: Duration { streak.reminderInterval }
    var failures: Int { streak.failures }

    /// What to log for a failed connect at `now`: the level and message, or nil when only debug.
    mutating func failed(reason: String, at now: ContinuousClock.Instant = .now) -> (level: Logger.Level, message: String)? {
        streak.failed(reason: reason, at: now)
    }

    /// The connection came up: the summary of the streak it ends, if there was one.
    mutating func connected(at now: ContinuousClock.Instant = .now) -> String? {
        streak.recovered(at: now)
    }
}
