import CoreMetrics
import Metrics
import Prometheus
import BuildInfo
import Reporting

/// The daemon's swift-metrics backend: everything counted through swift-metrics lands in one
/// Prometheus registry that `/metrics` renders. A label's dots become underscores
/// (`gateway.outbox.depth` → `gateway_outbox_depth`), each family gets the `# HELP` of
/// ``MetricsCatalog``, and timers are histograms in seconds with buckets chosen per metric for the
/// range it lives in.
public enum MetricsExport {
    /// Makes the registry, bootstraps swift-metrics with it (once per process) and records
    /// `gateway_build_info`.
    public static func bootstrap() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        let factory = factory(registry: registry)
        MetricsSystem.bootstrap(factory)
        recordBuildInfo(factory: factory)
        return registry
    }

    /// The factory, for tests that use a registry of their own.
    public static func factory(registry: PrometheusCollectorRegistry) -> CatalogMetricsFactory {
        let ms = { (values: [Int]) in values.map { Duration.milliseconds($0) } }
        return CatalogMetricsFactory(
            registry: registry,
            durationBuckets: [
                // End message in to answer out: ML latency dominates.
                "gateway.dialog.latency.seconds": ms([25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]),
                // One QoS 1 round trip to the cloud broker.
                "gateway.upstream.publish.duration.seconds": ms([1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000]),
                // Arrival to commit of a device event (store.commitIntervalMs and fsync).
                "gateway.ingress.commit_window.seconds": ms([1, 2, 5, 10, 20, 50, 100, 250, 1000]),
            ])
    }

    /// `gateway_build_info{version,commit} 1`: joins any series with the build it came from.
    public static func recordBuildInfo(factory: any MetricsFactory) {
        CoreMetrics.Gauge(
            label: MetricsCatalog.buildInfo,
            dimensions: [("version", GatewayVersion.version), ("commit", GatewayVersion.commit)],
            factory: factory
        ).record(1)
    }
}

/// A swift-metrics factory over a Prometheus registry that gives every family its `# HELP` from
/// ``MetricsCatalog`` (swift-prometheus' own factory registers every metric without help text).
/// A label the catalog does not know is exported without `# HELP`, so `promtool check metrics`
/// names it.
public struct CatalogMetricsFactory: MetricsFactory {
    public let registry: PrometheusCollectorRegistry
    let durationBuckets: [String: [Duration]]
    let defaultDurationBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]
    let defaultValueBuckets: [Double] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

    private func descriptor(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(
            metricName: MetricsCatalog.exportedName(label), unitName: "", helpText: MetricsCatalog.entries[label]?.help ?? "")
    }

    public func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(descriptor: descriptor(label), labels: dimensions, buckets: defaultValueBuckets)
    }

    public func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    public func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        registry.makeDurationHistogram(
            descriptor: descriptor(label), labels: dimensions, buckets: durationBuckets[label] ?? defaultDurationBuckets)
    }

    public func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    public func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    public func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    public func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
