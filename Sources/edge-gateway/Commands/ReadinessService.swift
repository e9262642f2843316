import GatewayCore
import Logging
import ServiceLifecycle
import Systemd

/// Tells systemd (and the log) when the gateway is ready, and when it starts stopping.
struct ReadinessService: Service {
    let notifier: SystemdNotifier
    let health: GatewayHealth
    let logger: Logger

    func run() async throws {
        let ready: Bool = await cancelWhenGracefulShutdown {
            await health.waitUntilDeviceSubscribed()
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
