import Metrics

/// Forwarder metrics, created once per forwarder.
struct ForwarderMetrics: Sendable {
    let publishLatency = Timer(label: "gateway.upstream.publish.duration")
    let forwarded = Counter(label: "gateway.upstream.events.forwarded")
    let unpublishable = Counter(label: "gateway.upstream.events.dropped", dimensions: [("reason", "unpublishable")])

    func published(latency: Duration) {
        forwarded.increment()
        publishLatency.recordNanoseconds(latency.components.seconds * 1_000_000_000 + latency.components.attoseconds / 1_000_000_000)
    }

    func dropped() { unpublishable.increment() }
}
