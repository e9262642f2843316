/// The circuit breaker of one endpoint (an ML endpoint, a REST service).
///
/// - **closed**: calls go through; outcomes are kept for the last `window`. Once at least
///   `minimumCalls` are in the window and the share of failures reaches `failureRatio`, it opens.
/// - **open**: calls are refused at once (the caller tries another endpoint or fails fast) for
///   `openDuration`; then it is half-open.
/// - **half-open**: one call at a time is let through as a probe; success closes the breaker
///   (with a fresh window), failure opens it again for another `openDuration`.
///
/// Only failures that say something about the endpoint count (unreachable, timed out, 5xx); a
/// request the service refused is a success for the breaker. The caller decides which is which.
/// A value type driven by the caller under its own lock, with time passed in, so it is tested
/// without sleeping.
public struct CircuitBreaker: Sendable {
    public enum State: String, Sendable, Equatable {
        case closed, open
        case halfOpen = "half-open"
    }

    public struct Configuration: Sendable, Equatable {
        /// Share of failed calls in the window that opens the breaker (`ml.breaker.failureRatio`).
        public var failureRatio: Double = 0.5
        /// Fewest calls in the window before the ratio counts (`ml.breaker.minimumCalls`).
        public var minimumCalls: Int = 5
        /// How long it stays open before a probe (`ml.breaker.openSeconds`).
        public var openDuration: Duration = .seconds(10)
        /// How far back outcomes count.
        public var window: Duration = .seconds(30)

        public init() {}
    }

    /// Replaceable (configuration reload); the state and the recorded calls stay.
    public var configuration: Configuration
    public private(set) var state: State = .closed
    private var outcomes: [(at: ContinuousClock.Instant, failed: Bool)] = []
    private var openedAt: ContinuousClock.Instant?
    private var probeInFlight = false

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Whether a call may go to the endpoint now. In half-open, `true` reserves the one probe.
    public mutating func allowsCall(at now: ContinuousClock.Instant) -> Bool {
        switch state {
        case .closed:
            return true
        case .open:
            guard let openedAt, openedAt.duration(to: now) >= configuration.openDuration else { return false }
            state = .halfOpen
            probeInFlight = true
            return true
        case .halfOpen:
            guard !probeInFlight else { return false }
            probeInFlight = true
            return true
        }
    }

    /// Records how a call that ``allowsCall(at:)`` let through ended. Returns the new state when
    /// it changed (for the log and metrics).
    @discardableResult
    public mutating func record(failed: Bool, at now: ContinuousClock.Instant) -> State? {
        switch state {
        case .halfOpen:
            probeInFlight = false
            if failed {
                open(at: now)
            } else {
                state = .closed
                outcomes.removeAll()
            }
            return state
        case .open:
            // A call let through before it opened: the breaker has decided already.
            return nil
        case .closed:
            outcomes.append((now, failed))
            let window = configuration.window
            outcomes.removeAll { $0.at.duration(to: now) > window }
            let failures = outcomes.filter(\.failed).count
            guard outcomes.count >= configuration.minimumCalls,
                Double(failures) / Double(outcomes.count) >= configuration.failureRatio
            else { return nil }
            open(at: now)
            return state
        }
    }

    private mutating func open(at now: ContinuousClock.Instant) {
        state = .open
        openedAt = now
        outcomes.removeAll()
    }
}
