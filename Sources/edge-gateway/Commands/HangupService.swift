import Logging
import ServiceLifecycle
import UnixSignals

/// Takes SIGHUP (`systemctl reload`) so it does not end the process (its default action).
/// Reloading the configuration in place is not implemented yet: the signal is logged with what
/// to do instead, and the running configuration stays as it is.
struct HangupService: Service {
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                logger.warning("SIGHUP received: live configuration reload is not supported yet; restart the service to apply changes")
            }
        }
    }
}
