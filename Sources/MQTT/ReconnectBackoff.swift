/// Exponential backoff with full jitter: after ``quickAttempts`` quick retries (each within
/// ``quickCeilingMilliseconds``, so a broker that comes up a moment after the gateway is used
/// within about a second), retry number n waits a random time in `0 ... min(cap, base * 2^k)`,
/// k = n - quickAttempts. Full jitter spreads a fleet of hubs that lost the same broker over the
/// whole interval instead of having them reconnect in waves; only repeated failures reach the cap.
public struct ReconnectBackoff: Sendable, Equatable {
    public var baseMilliseconds: Int
    public var capMilliseconds: Int
    /// Retries at the start of a streak of failures that wait at most ``quickCeilingMilliseconds``
    /// (`upstream.quickRetries`; 0: the first retry already waits the full-jitter backoff).
    public var quickAttempts = 2
    public var quickCeilingMilliseconds = 250

    public init(baseMilliseconds: Int, capMilliseconds: Int, quickAttempts: Int = 2) {
        self.baseMilliseconds = max(baseMilliseconds, 1)
        self.capMilliseconds = max(capMilliseconds, 1)
        self.quickAttempts = max(quickAttempts, 0)
    }

    /// The upper bound of the wait before retry number `attempt` (0-based), in milliseconds.
    public func ceiling(attempt: Int) -> Double {
        if attempt < quickAttempts {
            return Double(min(quickCeilingMilliseconds, baseMilliseconds, capMilliseconds))
        }
        let exponent = min(max(attempt - quickAttempts, 0), 40)
        return min(Double(capMilliseconds), Double(baseMilliseconds) * pow2(exponent))
    }

    /// A wait before retry number `attempt`, in milliseconds; `unit` is a uniform sample in 0...1.
    public func delay(attempt: Int, unit: Double = Double.random(in: 0...1)) -> Double {
        ceiling(attempt: attempt) * min(max(unit, 0), 1)
    }

    private func pow2(_ exponent: Int) -> Double {
        Double(sign: .plus, exponent: exponent, significand: 1)
    }
}
