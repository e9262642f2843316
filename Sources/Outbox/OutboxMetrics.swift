import Metrics

/// Outbox gauges and counters (dotted names, bounded dimensions), created once per outbox.
struct OutboxMetrics: Sendable {
    let depth = Gauge(label: "gateway.outbox.depth")
    let bytes = Gauge(label: "gateway.outbox.bytes")
    /// `store.maxBytes`, so an alert can compare `bytes` with it without knowing the configuration.
    let capacity = Gauge(label: "gateway.outbox.capacity.bytes")
    /// Events stored (each once: duplicates are not counted).
    let appended = Counter(label: "gateway.outbox.events.appended.total")
    /// Events removed after the upstream broker acknowledged them.
    let acked = Counter(label: "gateway.outbox.events.acked.total")
    /// Store commits (transactions written), fsyncs, and bytes written: the WAL frames (page +
    /// 24-byte header) of every commit. Checkpoints copy each page changed since the last one into
    /// the database once more; that is not in it.
    let commits = Counter(label: "gateway.outbox.commits.total")
    let fsyncs = Counter(label: "gateway.outbox.fsyncs.total")
    let writtenBytes = Counter(label: "gateway.outbox.written.bytes.total")
    let dropped: [String: Counter] = Dictionary(
        uniqueKeysWithValues: DropReason.allCases.map {
            ($0.rawValue, Counter(label: "gateway.outbox.events.dropped.total", dimensions: [("reason", $0.rawValue)]))
        })

    init(capacityBytes: Int64) {
        capacity.record(capacityBytes)
    }

    func record(depth: Int64, bytes: Int64) {
        self.depth.record(depth)
        self.bytes.record(bytes)
    }

    func committed(appended: Int64, removed: Int64) {
        if appended > 0 { self.appended.increment(by: appended) }
        if removed > 0 { acked.increment(by: removed) }
    }

    func dropped(_ reason: DropReason, count: Int64) {
        dropped[reason.rawValue]?.increment(by: count)
    }
}
