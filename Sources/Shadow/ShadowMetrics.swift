import Metrics

/// The shadow's counters and gauge (dotted names, bounded dimensions), created once per store.
struct ShadowMetrics: Sendable {
    static let outcomes = ["applied", "unchanged", "conflict", "rejected", "failed"]

    /// Cloud updates by outcome (`failed`: the store could not commit).
    let updates: [String: Counter]
    /// Device reports by outcome.
    let reports: [String: Counter]
    /// Refusals by message (`update`, `report`) and reason (``ShadowRefusal/Code``).
    let rejected: [String: Counter]
    /// Devices with a document.
    let documents: Gauge

    init(factory: any MetricsFactory) {
        updates = Dictionary(uniqueKeysWithValues: Self.outcomes.map {
            ($0, Counter(label: "gateway.shadow.updates.total", dimensions: [("outcome", $0)], factory: factory))
        })
        reports = Dictionary(uniqueKeysWithValues: Self.outcomes.map {
            ($0, Counter(label: "gateway.shadow.reports.total", dimensions: [("outcome", $0)], factory: factory))
        })
        var rejected: [String: Counter] = [:]
        for message in ["update", "report"] {
            for code in ShadowRefusal.Code.allCases {
                rejected["\(message)/\(code.rawValue)"] = Counter(
                    label: "gateway.shadow.rejected.total", dimensions: [("message", message), ("reason", code.rawValue)], factory: factory)
            }
        }
        self.rejected = rejected
        documents = Gauge(label: "gateway.shadow.documents", factory: factory)
    }

    func record(_ outcome: ShadowOutcome, section: ShadowSection) {
        (section == .desired ? updates : reports)[outcome.label]?.increment()
        if let refusal = outcome.refusal {
            rejected["\(section == .desired ? "update" : "report")/\(refusal.code.rawValue)"]?.increment()
        }
    }

    func recordFailure(section: ShadowSection) {
        (section == .desired ? updates : reports)["failed"]?.increment()
    }
}

/// The two sides of a document: the cloud's and the device's.
enum ShadowSection: String, Sendable {
    case desired, reported
}
