import BrokerTestSupport
import CoreMetrics
import Foundation
import Prometheus
import BuildInfo
import Reporting
import Testing

@testable import Admin

/// Every metric the daemon makes has its `# HELP` and a name Prometheus accepts: the labels are
/// read from the sources themselves, so a new metric without a catalog entry fails here before
/// `promtool` sees it in MetricsLintTests.
@Suite struct MetricsCatalogTests {
    /// A metric made in Sources/: its label and the kind its constructor makes.
    struct MadeMetric: Hashable, CustomStringConvertible {
        let label: String
        let kind: MetricsCatalog.Kind
        let file: String
        var description: String { "\(label) (\(kind.rawValue), \(file))" }
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Every `Counter(label:`, `Gauge(label:`, `Timer(label:`, … in Sources/, with the expressions
    /// that are not a string literal (or the catalog's own `buildInfo`) as problems.
    static func metricsMadeInSources() throws -> (metrics: [MadeMetric], problems: [String]) {
        let sources = root.appendingPathComponent("Sources")
        let kinds: [String: MetricsCatalog.Kind] = [
            "Counter": .counter, "FloatingPointCounter": .counter, "Gauge": .gauge, "Meter": .gauge,
            "Timer": .histogram, "Recorder": .histogram,
        ]
        let pattern = try NSRegularExpression(pattern: #"\b(Counter|FloatingPointCounter|Gauge|Meter|Timer|Recorder)\(\s*label:\s*([^,)]+)"#)
        var metrics: [MadeMetric] = []
        var problems: [String] = []
        let files = try #require(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        for case let file as URL in files where file.pathExtension == "swift" {
            let text = try String(contentsOf: file, encoding: .utf8)
            let name = file.path.replacingOccurrences(of: root.path + "/", with: "")
            for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                guard let typeRange = Range(match.range(at: 1), in: text), let argumentRange = Range(match.range(at: 2), in: text)
                else { continue }
                let kind = kinds[String(text[typeRange])]!
                let argument = text[argumentRange].trimmingCharacters(in: .whitespacesAndNewlines)
                if argument == "MetricsCatalog.buildInfo" {
                    metrics.append(MadeMetric(label: MetricsCatalog.buildInfo, kind: kind, file: name))
                } else if argument.hasPrefix("\""), argument.hasSuffix("\""), argument.count > 2, !argument.contains("\\(") {
                    metrics.append(MadeMetric(label: String(argument.dropFirst().dropLast()), kind: kind, file: name))
                } else {
                    problems.append("\(name): a metric label that is not a string literal: \(argument)")
                }
            }
        }
        return (metrics, problems)
    }

    @Test func everyMetricMadeInSourcesHasACatalogEntryOfItsKind() throws {
        let (metrics, problems) = try Self.metricsMadeInSources()
        #expect(problems.isEmpty, "\(problems)")
        // The scan finds the daemon's metrics (a broken pattern would find none and pass).
        #expect(metrics.count >= 40, "\(metrics.count) metrics found")
        #expect(metrics.contains { $0.label == "gateway.outbox.depth" && $0.kind == .gauge })
        let missing = metrics.filter { MetricsCatalog.entries[$0.label] == nil }
        #expect(missing.isEmpty, "made in Sources but not in MetricsCatalog (no # HELP): \(missing)")
        let wrongKind = metrics.filter { made in MetricsCatalog.entries[made.label].map { $0.kind != made.kind } ?? false }
        #expect(wrongKind.isEmpty, "catalog kind differs from the constructor: \(wrongKind)")
    }

    @Test func everyCatalogEntryIsMadeSomewhere() throws {
        let made = Set(try Self.metricsMadeInSources().metrics.map(\.label))
        let unused = MetricsCatalog.entries.keys.filter { !made.contains($0) }.sorted()
        #expect(unused.isEmpty, "in MetricsCatalog but made nowhere in Sources: \(unused)")
    }

    @Test(arguments: MetricsCatalog.entries.keys.sorted())
    func namesFollowPrometheusConventions(label: String) throws {
        let entry = try #require(MetricsCatalog.entries[label])
        #expect(label.wholeMatch(of: /gateway(\.[a-z][a-z0-9_]*)+/) != nil, "not a snake_case dotted name")
        #expect(label.hasSuffix(".total") == (entry.kind == .counter), "counters, and only counters, end in .total")
        if entry.kind == .histogram {
            #expect(label.hasSuffix(".seconds") || label.hasSuffix(".bytes"), "a histogram names its base unit")
        }
        for unit in ["_ms", ".ms", "millis", "micros", "_kb", ".kb", "kib", "_mb", ".mb"] {
            #expect(!label.lowercased().contains(unit), "not a base unit: \(unit)")
        }
        #expect(!entry.help.isEmpty && !entry.help.contains("\n") && entry.help.hasSuffix("."), "help: \(entry.help)")
    }

    @Test func theMetricTableDocumentsEveryMetric() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("Sources/Admin/README.md"), encoding: .utf8)
        let undocumented = MetricsCatalog.entries.keys.map(MetricsCatalog.exportedName).filter { !readme.contains("`\($0)`") }.sorted()
        #expect(undocumented.isEmpty, "not in the metric table of Sources/Admin/README.md: \(undocumented)")
    }

    /// The alert rules in Sources/Admin/README.md: valid for promtool, and every metric they use exists.
    @Test(.enabled(if: Promtool.path != nil, "promtool is not installed (scripts/setup installs Debian's prometheus)"))
    func theAlertRulesInTheREADMEAreValidAndUseTheDaemonsMetrics() async throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("Sources/Admin/README.md"), encoding: .utf8)
        let block = try #require(readme.firstMatch(of: /```yaml\n(groups:[\s\S]*?)```/)?.1)
        let names = Set(block.matches(of: /gateway_[a-z0-9_]+/).map { String($0.0) })
        let exported = Set(MetricsCatalog.entries.keys.map(MetricsCatalog.exportedName))
        #expect(names.count >= 5 && names.isSubset(of: exported), "unknown: \(names.subtracting(exported).sorted())")
        try await withSandbox { sandbox in
            let rules = sandbox.url("alerts.yml")
            try Data(block.utf8).write(to: rules)
            let result = try await Promtool.run(["check", "rules", rules.path], in: sandbox.directory)
            #expect(result.exit == .exited(0), "\(result.output)")
        }
    }

    /// Every catalog metric made through the daemon's factory, rendered.
    static func everyCatalogMetricRendered() -> String {
        let registry = PrometheusCollectorRegistry()
        let factory = MetricsExport.factory(registry: registry)
        for (label, entry) in MetricsCatalog.entries.sorted(by: { $0.key < $1.key }) where label != MetricsCatalog.buildInfo {
            switch entry.kind {
            case .counter: CoreMetrics.Counter(label: label, dimensions: [("reason", "test")], factory: factory).increment()
            case .gauge: CoreMetrics.Gauge(label: label, factory: factory).record(1)
            case .histogram: CoreMetrics.Timer(label: label, factory: factory).recordMilliseconds(3)
            }
        }
        MetricsExport.recordBuildInfo(factory: factory)
        return registry.emitToString()
    }

    @Test func everyFamilyIsExportedWithItsHelp() throws {
        let text = Self.everyCatalogMetricRendered()
        let families = text.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { $0.split(separator: " ")[2] }
        #expect(families.count == MetricsCatalog.entries.count)
        for family in families {
            let help = MetricsCatalog.entries.first { MetricsCatalog.exportedName($0.key) == family }?.value.help
            #expect(help != nil && text.contains("# HELP \(family) \(help ?? "")\n"), "\(family)")
        }
    }

    @Test func theBuildInfoGaugeCarriesVersionAndCommit() {
        let registry = PrometheusCollectorRegistry()
        MetricsExport.recordBuildInfo(factory: MetricsExport.factory(registry: registry))
        let text = registry.emitToString()
        #expect(text.contains("# TYPE gateway_build_info gauge"))
        #expect(text.contains(#"gateway_build_info{version="\#(GatewayVersion.version)",commit="\#(GatewayVersion.commit)"} 1"#), "\(text)")
        #expect(GatewayVersion.version.wholeMatch(of: /[0-9]+\.[0-9]+\.[0-9]+/) != nil)
    }

    @Test(.enabled(if: Promtool.path != nil, "promtool is not installed (scripts/setup installs Debian's prometheus)"))
    func promtoolFindsNothingInTheExpositionOfEveryMetric() async throws {
        try await withSandbox { sandbox in
            let result = try await Promtool.checkMetrics(Self.everyCatalogMetricRendered(), in: sandbox.directory)
            #expect(result.exit == .exited(0) && result.problems.isEmpty, "\(result.problems)")
        }
    }

    /// The lint can fail: a metric the catalog lacks has no HELP, and promtool says so.
    @Test(.enabled(if: Promtool.path != nil, "promtool is not installed (scripts/setup installs Debian's prometheus)"))
    func aMetricTheCatalogLacksIsExportedWithoutHelpAndPromtoolNamesIt() async throws {
        let registry = PrometheusCollectorRegistry()
        CoreMetrics.Counter(label: "gateway.uncatalogued.total", factory: MetricsExport.factory(registry: registry)).increment()
        let text = registry.emitToString()
        #expect(text.contains("gateway_uncatalogued_total 1") && !text.contains("# HELP"), "\(text)")
        try await withSandbox { sandbox in
            let result = try await Promtool.checkMetrics(text, in: sandbox.directory)
            #expect(result.exit != .exited(0))
            #expect(result.problems.contains("gateway_uncatalogued_total") && result.problems.contains("no help text"), "\(result.problems)")
        }
    }
}
