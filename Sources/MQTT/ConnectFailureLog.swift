import Logging

/// How a client reports a broker it cannot reach, so an operator reads one clear error instead of
/// a line per attempt: the first failure of a streak at error, with the address and what to
/// check; the attempts after it at debug, with a reminder at warning every `reminderInterval`
/// (how long and how many attempts); and one line when the connection finally comes up.
///
/// Network thread only (a value owned by the client's loop).
struct ConnectFailureLog {
    let broker: String
    let reminderInterval: Duration
    private(set) var failures = 0
    private var since: ContinuousClock.Instant?
    private var lastReminder: ContinuousClock.Instant?
    private var lastReason: String?

    init(broker: String, reminderInterval: Duration = .seconds(60)) {
        self.broker = broker
        self.reminderInterval = reminderInterval
    }

    /// What to log for a failed connect at `now`: the level and message, or nil when only debug.
    mutating func failed(reason: String, at now: ContinuousClock.Instant = .now) -> (level: Logger.Level, message: String)? {
        failures += 1
        defer { lastReason = reason }
        guard let since else {
            self.since = now
            lastReminder = now
            return (.error, "cannot connect to the MQTT broker; retrying with backoff (check that it runs and listens at this address, and the credentials)")
        }
        if reason != lastReason {
            // A different problem (refused, then bad credentials) is news.
            lastReminder = now
            return (.error, "cannot connect to the MQTT broker, now for another reason; retrying")
        }
        if let lastReminder, lastReminder.duration(to: now) >= reminderInterval {
            self.lastReminder = now
            return (.warning, "still cannot connect to the MQTT broker after \(Self.seconds(since.duration(to: now))) s and \(failures) attempts")
        }
        return nil
    }

    /// The connection came up: the summary of the streak it ends, if there was one.
    mutating func connected(at now: ContinuousClock.Instant = .now) -> String? {
        defer {
            failures = 0
            since = nil
            lastReminder = nil
            lastReason = nil
        }
        guard let since, failures > 0 else { return nil }
        return "MQTT broker reachable again after \(Self.seconds(since.duration(to: now))) s and \(failures) failed attempts"
    }

    private static func seconds(_ duration: Duration) -> Int64 { duration.components.seconds }
}
