import GatewayCore
import Metrics

/// The metrics of one ML endpoint, made when the endpoint first joins and kept by the pool (not
/// made again on every call): the `gateway.ml.breaker.state` gauge (0 closed, 1 half-open,
/// 2 open) and the `gateway.ml.calls.total` counters by call and outcome, each made the first time it
/// counts (a series appears with its first call, as before).
struct MLMetrics: Sendable {
    let endpoint: MLEndpoint
    let breaker: Gauge
    private var calls: [String: Counter] = [:]

    init(endpoint: MLEndpoint) {
        self.endpoint = endpoint
        breaker = Gauge(label: "gateway.ml.breaker.state", dimensions: [("endpoint", "\(endpoint)")])
    }

    func record(_ state: CircuitBreaker.State) {
        breaker.record(state == .closed ? 0 : state == .halfOpen ? 1 : 2)
    }

    /// The counter of `call` ("intent", "transcribe") ending with `error` (nil: "ok").
    mutating func calls(_ call: String, error: MLError?) -> Counter {
        let outcome = error.map { $0.code.rawValue.replacingOccurrences(of: " ", with: "_") } ?? "ok"
        let key = "\(call) \(outcome)"
        if let counter = calls[key] { return counter }
        let counter = Counter(
            label: "gateway.ml.calls.total", dimensions: [("endpoint", "\(endpoint)"), ("call", call), ("outcome", outcome)])
        calls[key] = counter
        return counter
    }
}
