import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Process {
    /// `run()`, from a thread whose signal mask is empty, so that the child starts with no blocked signals.
    ///
    /// Why: a child inherits the signal mask of the thread that spawns it, and the threads Swift concurrency
    /// runs tests on block SIGTERM, SIGINT, SIGHUP and others. Spawned from there, Mosquitto and the daemon
    /// never see the SIGTERM a test sends (it stays pending), so "SIGTERM -> clean exit" could not be tested.
    public func runWithCleanSignalMask() throws {
        let process = self
        let outcome = SpawnOutcome()
        let thread = Thread {
            var empty = sigset_t()
            sigemptyset(&empty)
            pthread_sigmask(SIG_SETMASK, &empty, nil)
            do {
                try process.run()
                outcome.finish(nil)
            } catch {
                outcome.finish(error)
            }
        }
        thread.start()
        if let error = outcome.wait() { throw error }
    }
}

/// Hands the result of a spawn from the spawning thread back to the caller.
private final class SpawnOutcome: @unchecked Sendable {
    // Written once by the spawning thread before `done` is signalled, read only after the wait.
    private var error: (any Error)?
    private let done = DispatchSemaphore(value: 0)

    func finish(_ error: (any Error)?) {
        self.error = error
        done.signal()
    }

    func wait() -> (any Error)? {
        done.wait()
        return error
    }
}
