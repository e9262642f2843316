import GatewayCore
import Metrics

/// Ingress metrics, created once (dimensions are bounded: reasons, never device ids).
struct IngressMetrics: Sendable {
    let stored = Counter(label: "gateway.ingress.events.stored.total")
    let duplicates = Counter(label: "gateway.ingress.events.duplicate.total")
    let ackFailures = Counter(label: "gateway.ingress.acks.failed.total")
    let commitWindow = Timer(label: "gateway.ingress.commit_window.seconds")
    let rejectedByReason: [String: Counter] = Dictionary(
        uniqueKeysWithValues: (RejectReason.allCases.map(\.counterName) + ["invalid_device_id", "invalid_topic"]).map {
            ($0, Counter(label: "gateway.mqtt.messages.rejected.total", dimensions: [("reason", $0)]))
        })

    func rejected(counterName: String) {
        rejectedByReason[counterName]?.increment()
    }

    func record(stored: Int64, duplicates: Int64, commitWindow: Duration) {
        if stored > 0 {
            self.stored.increment(by: stored)
            self.commitWindow.recordNanoseconds(commitWindow.components.seconds * 1_000_000_000 + commitWindow.components.attoseconds / 1_000_000_000)
        }
        if duplicates > 0 { self.duplicates.increment(by: duplicates) }
    }

    func ackFailed() { ackFailures.increment() }
}
