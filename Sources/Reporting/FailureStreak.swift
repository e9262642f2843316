import Logging

/// How a part reports a peer it cannot reach, so an operator reads one clear error instead of a line per
/// attempt: the first failure of a streak at error; a different reason (refused, then bad credentials) at
/// error again, because that is news; the same one again only at debug (nil here), with a reminder at warning
/// every `reminderInterval` saying how long and how many attempts; and one line when the peer works again.
///
/// A value owned by one loop (the MQTT client's network thread, the wake-word listener).
public struct FailureStreak: Sendable {
    /// What the lines say; the numbers are seconds since the streak began and failed attempts.
    public struct Messages: Sendable {
        public var first: String
        public var newReason: String
        public var reminder: @Sendable (_ seconds: Int64, _ attempts: Int) -> String
        public var recovered: @Sendable (_ seconds: Int64, _ attempts: Int) -> String

        public init(
            first: String, newReason: String, reminder: @escaping @Sendable (Int64, Int) -> String,
            recovered: @escaping @Sendable (Int64, Int) -> String
        ) {
            self.first = first
            self.newReason = newReason
            self.reminder = reminder
            self.recovered = recovered
        }
    }

    public let messages: Messages
    public let reminderInterval: Duration
    public private(set) var failures = 0
    private var since: ContinuousClock.Instant?
    private var lastReminder: ContinuousClock.Instant?
    private var lastReason: String?

    public init(messages: Messages, reminderInterval: Duration = .seconds(60)) {
        self.messages = messages
        self.reminderInterval = reminderInterval
    }

    /// What to log for a failure at `now`: the level and message, or nil when only debug.
    public mutating func failed(reason: String, at now: ContinuousClock.Instant = .now) -> (level: Logger.Level, message: String)? {
        failures += 1
        defer { lastReason = reason }
        guard let since else {
            self.since = now
            lastReminder = now
            return (.error, messages.first)
        }
        if reason != lastReason {
            lastReminder = now
            return (.error, messages.newReason)
        }
        if let lastReminder, lastReminder.duration(to: now) >= reminderInterval {
            self.lastReminder = now
            return (.warning, messages.reminder(since.duration(to: now).components.seconds, failures))
        }
        return nil
    }

    /// The peer works again: the summary of the streak it ends, if there was one.
    public mutating func recovered(at now: ContinuousClock.Instant = .now) -> String? {
        defer {
            failures = 0
            since = nil
            lastReminder = nil
            lastReason = nil
        }
        guard let since, failures > 0 else { return nil }
        return messages.recovered(since.duration(to: now).components.seconds, failures)
    }
}
