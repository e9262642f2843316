import Metrics

/// Forwarder metrics, created once per forwarder.
struct ForwarderMetrics: Sendable {
    let publishLatency = Timer(label: "gateway.upstream.publish.duration.seconds")
    let forwarded = Counter(label: "gateway.upstream.events.forwarded.total")
    let unpublishable = Counter(label: "gateway.upstream.events.dropped.total", dimensions: [("reason", "unpublishable")])

    func published(latency: Duration) {
        forwarded.increment()
        publishLatency.recordNanoseconds(latency.components.seconds * 1_000_000_000 + latency.components.attoseconds / 1_000_000_000)
    }

    func dropped() { unpublishable.increment() }
}
