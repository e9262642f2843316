/// A token bucket: holds up to `capacity` tokens, refilled at `perMinute` tokens a minute; a
/// request takes one. A value type with time passed in, so tests need no clock.
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    public let perMinute: Double
    private var tokens: Double
    private var updated: ContinuousClock.Instant

    public init(perMinute: Int, at now: ContinuousClock.Instant) {
        capacity = Double(max(perMinute, 1))
        self.perMinute = Double(max(perMinute, 1))
        tokens = capacity
        updated = now
    }

    private mutating func refill(at now: ContinuousClock.Instant) {
        let elapsed = updated.duration(to: now)
        guard elapsed > .zero else { return }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(capacity, tokens + seconds * perMinute / 60)
        updated = now
    }

    /// Whether a token is there now (it is not taken).
    public mutating func hasToken(at now: ContinuousClock.Instant) -> Bool {
        refill(at: now)
        return tokens >= 1
    }

    /// Takes a token; false when the bucket is empty.
    public mutating func take(at now: ContinuousClock.Instant) -> Bool {
        guard hasToken(at: now) else { return false }
        tokens -= 1
        return true
    }

    /// Whether the bucket is full again (it then says nothing a fresh one would not).
    public mutating func isFull(at now: ContinuousClock.Instant) -> Bool {
        refill(at: now)
        return tokens >= capacity
    }
}
