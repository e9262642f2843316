import Metrics
import Prometheus

/// The daemon's swift-metrics backend: everything counted through swift-metrics lands in one
/// Prometheus registry that `/metrics` renders. Dotted names become underscores
/// (`gateway.outbox.depth` → `gateway_outbox_depth`); timers are histograms in seconds with
/// buckets chosen per metric for the range it lives in.
public enum MetricsExport {
    /// Makes the registry and bootstraps swift-metrics with it (once per process).
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(factory(registry: registry))
        return registry
    }

    /// The factory, for tests that use a registry of their own.
    public static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        let ms = { (values: [Int]) in values.map { Duration.milliseconds($0) } }
        factory.durationHistogramBuckets = [
            // End message in to answer out: ML latency dominates.
            "gateway.dialog.latency": ms([25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]),
            // One QoS 1 round trip to the cloud broker.
            "gateway.upstream.publish.duration": ms([1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000]),
            // Arrival to commit of a device event (store.commitIntervalMs and fsync).
            "gateway.ingress.commit_window.duration": ms([1, 2, 5, 10, 20, 50, 100, 250, 1000]),
        ]
        return factory
    }
}
