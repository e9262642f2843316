import Logging
import ServiceLifecycle

/// Pings systemd's watchdog at half of `WATCHDOG_USEC` and refreshes `STATUS=` with a line
/// from `status`. The ping only goes out while `isHealthy` says the process is making progress,
/// so a wedged gateway is restarted by systemd rather than kept alive by a timer.
public struct WatchdogService: Service {
    private let notifier: SystemdNotifier
    private let logger: Logger
    private let status: @Sendable () async -> String
    private let isHealthy: @Sendable () async -> Bool
    private let statusInterval: Duration

    public init(
        notifier: SystemdNotifier = SystemdNotifier(),
        logger: Logger,
        statusInterval: Duration = .seconds(10),
        isHealthy: @escaping @Sendable () async -> Bool = { true },
        status: @escaping @Sendable () async -> String
    ) {
        self.notifier = notifier
        self.logger = logger
        self.statusInterval = statusInterval
        self.isHealthy = isHealthy
        self.status = status
    }

    public func run() async throws {
        let watchdog = notifier.watchdogInterval
        if let watchdog {
            logger.info("systemd watchdog enabled", metadata: ["watchdog.interval": "\(watchdog)"])
        }
        guard notifier.isAvailable else {
            // Nothing to tell; wait for shutdown without waking up.
            try? await gracefulShutdown()
            return
        }
        let tick = min(watchdog.map { $0 / 2 } ?? statusInterval, statusInterval)
        await cancelWhenGracefulShutdown {
            var sinceStatus = Duration.zero
            while !Task.isCancelled {
                if watchdog != nil, await isHealthy() {
                    notifier.watchdog()
                }
                if sinceStatus >= statusInterval || sinceStatus == .zero {
                    notifier.status(await status())
                    sinceStatus = .zero
                }
                do {
                    try await Task.sleep(for: tick)
                } catch {
                    break
                }
                sinceStatus += tick
            }
        }
    }
}
