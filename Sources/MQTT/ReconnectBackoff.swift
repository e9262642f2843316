/// Exponential backoff with full jitter: the n-th retry waits a random time in
/// `0 ... min(cap, base * 2^n)`. Full jitter spreads a fleet of hubs that lost the same broker
/// over the whole interval instead of having them reconnect in waves.
public struct ReconnectBackoff: Sendable, Equatable {
    public var baseMilliseconds: Int
    public var capMilliseconds: Int

    public init(baseMilliseconds: Int, capMilliseconds: Int) {
        self.baseMilliseconds = max(baseMilliseconds, 1)
        self.capMilliseconds = max(capMilliseconds, 1)
    }

    /// The upper bound of the wait before retry number `attempt` (0-based), in milliseconds.
    public func ceiling(attempt: Int) -> Double {
        min(Double(capMilliseconds), Double(baseMilliseconds) * pow2(min(max(attempt, 0), 40)))
    }

    /// A wait before retry number `attempt`, in milliseconds; `unit` is a uniform sample in 0...1.
    public func delay(attempt: Int, unit: Double = Double.random(in: 0...1)) -> Double {
        ceiling(attempt: attempt) * min(max(unit, 0), 1)
    }

    private func pow2(_ exponent: Int) -> Double {
        Double(sign: .plus, exponent: exponent, significand: 1)
    }
}
