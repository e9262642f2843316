import Logging
import Platform
import ServiceLifecycle

/// Returns freed heap memory to the kernel every `interval`, and once, `releaseStartupPagesAfter`
/// after the daemon is ready (``init(interval:releaseStartupPagesAfter:ready:logger:)``), the
/// pages of the executable that start-up mapped.
///
/// A burst of device events leaves its buffers (acks queued for the device broker, message
/// batches) freed but still resident in glibc's per-thread arenas, so the RSS that systemd and
/// the operator see would stay at the burst's peak for the life of the process. `malloc_trim`
/// hands the free pages back; measured after 40,000 events it brings anonymous memory from
/// 12.8 MB back to 6 MB (BENCHMARKS.md, "footprint"). The call walks the arenas once: cheap at
/// this interval, and nothing else wakes.
///
/// Start-up maps code and data that idle never uses again (the configuration reader and its YAML
/// and ICU tables, argument parsing, every service's set-up): about 7 MB of the release build's
/// 18 MB of mapped executable. ``ExecutablePages/release()`` unmaps them all once start-up is
/// over; what the daemon goes on running faults back in from the file (BENCHMARKS.md "Start-up
/// pages handed back"). Like the kernel freeing its `__init` sections after boot, but without
/// knowing which pages were start-up's: the kernel finds out from what is used again.
public struct MemoryTrimService: Service {
    private let interval: Duration
    private let releaseStartupPagesAfter: Duration?
    private let ready: @Sendable () async -> Void
    private let logger: Logger

    /// - Parameters:
    ///   - releaseStartupPagesAfter: when the executable's pages go back to the kernel, counted
    ///     from `ready` (`memory.releaseStartupPagesSeconds`); nil: never.
    ///   - ready: returns once start-up is over (the daemon's first device subscription), so a
    ///     start that waits for its broker still has its connection's code mapped when the pages
    ///     go back; returning at once counts from the service's start.
    public init(
        interval: Duration = .seconds(10), releaseStartupPagesAfter: Duration? = nil,
        ready: @escaping @Sendable () async -> Void = {}, logger: Logger
    ) {
        self.interval = interval
        self.releaseStartupPagesAfter = releaseStartupPagesAfter
        self.ready = ready
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                if let after = releaseStartupPagesAfter {
                    group.addTask {
                        await ready()
                        guard (try? await Task.sleep(for: after)) != nil else { return }
                        await releaseStartupPages()
                    }
                }
                group.addTask {
                    while !Task.isCancelled {
                        guard (try? await Task.sleep(for: interval)) != nil else { break }
                        if HeapMemory.trim() {
                            logger.trace("returned free heap memory to the kernel")
                        }
                    }
                }
                await group.waitForAll()
            }
        }
    }

    /// Once: the madvise and the two reads of `/proc/self/smaps` run off the cooperative pool.
    private func releaseStartupPages() async {
        do {
            let release = try await offThePool(qos: .utility) { () throws(ExecutablePages.ReleaseError) in try ExecutablePages.release() }
            logger.info(
                "handed the executable's start-up pages back to the kernel",
                metadata: ["resident_before_kB": "\(release.residentBeforeKB)", "resident_after_kB": "\(release.residentAfterKB)"])
        } catch {
            logger.notice("kept the executable's start-up pages: \(error)")
        }
    }
}
