import DeviceLink
import Foundation
import Outbox
import Reporting
import ServiceLifecycle
import Synchronization
import Upstream

/// The `STATUS=` line systemd shows (`systemctl status`), assembled from the values the outbox,
/// the device ingress and the upstream forwarder publish. Each line reports the largest commit
/// window since the line before; to know it, this service follows every update of the ingress's
/// state and keeps the period's maximum itself (the ingress publishes each batch's window).
final class StatusLine: Service, Sendable {
    private let outbox: Outbox
    private let ingress: PublishedState<DeviceIngress.State>
    private let upstream: PublishedState<UpstreamForwarder.State>
    private let period = Mutex(Period())
    /// Subscribed when made, before the ingress runs, so no batch goes unseen.
    private let ingressUpdates: AsyncStream<DeviceIngress.State>

    private struct Period {
        var acknowledgedBatches: Int64 = 0
        var maxCommitWindowMs: Double = 0
    }

    init(outbox: Outbox, ingress: PublishedState<DeviceIngress.State>, upstream: PublishedState<UpstreamForwarder.State>) {
        self.outbox = outbox
        self.ingress = ingress
        self.upstream = upstream
        ingressUpdates = ingress.updates
    }

    func run() async {
        for await state in ingressUpdates.cancelOnGracefulShutdown() {
            period.withLock { period in
                guard state.acknowledgedBatches != period.acknowledgedBatches else { return }
                period.acknowledgedBatches = state.acknowledgedBatches
                period.maxCommitWindowMs = max(period.maxCommitWindowMs, state.lastCommitWindowMs)
            }
        }
    }

    /// The next line; starts a new period for the commit window.
    func next() -> String {
        let depth = outbox.depth
        let window = period.withLock { period in
            defer { period.maxCommitWindowMs = 0 }
            return period.maxCommitWindowMs
        }
        let link = upstream.current
        // With several upstream addresses (upstream.hosts), the one in use and the failovers so far.
        let address = link.upstreamAddresses.count > 1 ? " at \(link.upstreamBroker) (\(link.upstreamFailovers) failovers)" : ""
        return "outbox \(depth.count) events; upstream \(link.upstreamConnected ? "up" : "down")\(address)"
            + "; devices \(ingress.current.deviceSubscribed ? "subscribed" : "not subscribed")"
            + String(format: "; max commit window %.1f ms", window)
    }
}
