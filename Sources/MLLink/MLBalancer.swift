import GatewayCore

/// What ``MLBalancer`` needs to know of one endpoint: its breaker, the calls under way, and
/// whether the health service reports it down.
protocol MLBalancerEntry {
    var breaker: CircuitBreaker { get set }
    var outstanding: Int { get set }
    /// Skipped while others are up: the health service said so, or could not be reached.
    var healthDown: Bool { get }
}

/// Which endpoint the next ML call goes to (`ml.balancing`): in turn (`roundRobin`) or the one
/// with the fewest calls under way (`leastOutstanding`, ties in turn order), among those whose
/// breaker lets a call through; endpoints the health service reports down only when no other is
/// up. A value type driven by the pool under its lock, with time passed in (like
/// ``CircuitBreaker``), so it is tested without a clock or a server.
struct MLBalancer: Sendable {
    /// Pick order (configuration order, then resolution order).
    private(set) var order: [MLEndpoint] = []
    /// Where the next turn starts in `order`.
    private(set) var next = 0

    init() {}

    mutating func add(_ endpoint: MLEndpoint) {
        order.append(endpoint)
    }

    mutating func remove(where shouldRemove: (MLEndpoint) -> Bool) {
        order.removeAll(where: shouldRemove)
    }

    /// The endpoint the next call goes to, or nil when no breaker lets one through; its
    /// `outstanding` is counted up, and `change` is its breaker's new state when letting the call
    /// through changed it (open → half-open: this call is the probe). Endpoints the health
    /// service reports down are only used when no other is up.
    mutating func pick<Entry: MLBalancerEntry>(
        excluding tried: Set<MLEndpoint>, from entries: inout [MLEndpoint: Entry],
        balancing: MLConfiguration.Balancing, at now: ContinuousClock.Instant
    ) -> (endpoint: MLEndpoint, change: CircuitBreaker.State?)? {
        let count = order.count
        guard count > 0 else { return nil }
        var candidates = (0..<count).map { order[(next + $0) % count] }.filter { !tried.contains($0) }
        if balancing == .leastOutstanding {
            // Stable: ties keep their turn order.
            candidates = candidates.enumerated().sorted {
                let a = entries[$0.element]!.outstanding, b = entries[$1.element]!.outstanding
                return a != b ? a < b : $0.offset < $1.offset
            }.map(\.element)
        }
        let up = candidates.filter { !entries[$0]!.healthDown }
        for endpoint in up + candidates.filter({ entries[$0]!.healthDown }) {
            let before = entries[endpoint]!.breaker.state
            guard entries[endpoint]!.breaker.allowsCall(at: now) else { continue }
            entries[endpoint]!.outstanding += 1
            if let index = order.firstIndex(of: endpoint) { next = index + 1 }
            let after = entries[endpoint]!.breaker.state
            return (endpoint, after != before ? after : nil)
        }
        return nil
    }

    /// Records the end of a call ``pick(excluding:from:balancing:at:)`` let through: one call
    /// fewer under way, the outcome on the breaker. Returns the breaker's new state when it
    /// changed; nil, and nothing recorded, when the endpoint is gone.
    func finish<Entry: MLBalancerEntry>(
        _ endpoint: MLEndpoint, in entries: inout [MLEndpoint: Entry], failed: Bool, at now: ContinuousClock.Instant
    ) -> CircuitBreaker.State? {
        guard entries[endpoint] != nil else { return nil }
        entries[endpoint]!.outstanding -= 1
        return entries[endpoint]!.breaker.record(failed: failed, at: now)
    }
}
