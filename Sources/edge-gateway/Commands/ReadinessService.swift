import DeviceLink
import Logging
import Reporting
import ServiceLifecycle
import Systemd

/// Tells systemd (and the log) when the gateway is ready, and when it starts stopping.
struct ReadinessService: Service {
    let notifier: SystemdNotifier
    /// Ready once the device subscription has been active at least once (the ingress's published state).
    let ingress: PublishedState<DeviceIngress.State>
    let logger: Logger

    func run() async throws {
        let ready: Bool = await cancelWhenGracefulShutdown { [ingress] in
            _ = await ingress.first(where: \.deviceSubscribed)
            return true
        } ?? false
        if ready {
            notifier.ready(status: "ready")
            logger.info("gateway ready")
            try? await gracefulShutdown()
        }
        notifier.stopping()
        logger.info("gateway stopping")
    }
}
