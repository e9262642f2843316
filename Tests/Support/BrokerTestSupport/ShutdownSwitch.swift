import ServiceLifecycleTestKit
import Synchronization

/// The graceful-shutdown trigger of a service run by a unit test (inside `testGracefulShutdown`):
/// the test stops the service as the service group would, once its body has started.
///
/// ```swift
/// let shutdown = ShutdownSwitch()
/// let running = Task { await testGracefulShutdown { trigger in shutdown.arm(trigger); try? await service.run() } }
/// …
/// await shutdown.pull()
/// await running.value
/// ```
public final class ShutdownSwitch: Sendable {
    private let trigger = Mutex<GracefulShutdownTestTrigger?>(nil)

    public init() {}

    public func arm(_ trigger: GracefulShutdownTestTrigger) {
        self.trigger.withLock { $0 = trigger }
    }

    /// Triggers the graceful shutdown (waiting for the service's body to have started).
    public func pull() async {
        while trigger.withLock({ $0 }) == nil { await Task.yield() }
        trigger.withLock { $0 }?.triggerGracefulShutdown()
    }
}
