import Metrics

/// The client's metrics, made once per client: `gateway.wyoming.calls.failed.total` by call and reason (the
/// ``WyomingError/Code``), a bounded set (6 calls × 12 codes). The endpoint is not a label here: the ML pool
/// that owns the endpoints counts calls per endpoint (`gateway.ml.calls.total`).
final class WyomingMetrics: Sendable {
    static let calls = ["describe", "transcribe", "recognize", "handle", "synthesize", "detect"]

    private let failed: [String: Counter]

    init(factory: any MetricsFactory) {
        var counters: [String: Counter] = [:]
        for call in Self.calls {
            for code in WyomingError.Code.allCases {
                counters["\(call)/\(code.rawValue)"] = Counter(
                    label: "gateway.wyoming.calls.failed.total", dimensions: [("call", call), ("reason", code.rawValue)], factory: factory
                )
            }
        }
        failed = counters
    }

    func failed(_ call: String, _ code: WyomingError.Code) {
        failed["\(call)/\(code.rawValue)"]?.increment()
    }
}
