import MQTT
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

    let failovers = Counter(label: "gateway.upstream.failovers.total")
    let connectsOK = Counter(label: "gateway.upstream.connects.total", dimensions: [("result", "ok")])
    let connectsFailed = Counter(label: "gateway.upstream.connects.total", dimensions: [("result", "failed")])

    /// `gateway_upstream_address_info{address}`: 1 for the address in use, 0 for the other
    /// configured ones (so the label values are bounded by `upstream.hosts`).
    func addressInUse(_ current: MQTTBrokerAddress, of addresses: [MQTTBrokerAddress]) {
        for address in addresses where address != current {
            Gauge(label: "gateway.upstream.address.info", dimensions: [("address", address.description)]).record(0)
        }
        Gauge(label: "gateway.upstream.address.info", dimensions: [("address", current.description)]).record(1)
    }
}
