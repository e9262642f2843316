import Foundation
import Logging
import Synchronization

/// Logs a repeated message at most once per interval per key, with how many occurrences it covers
/// (`count`), so a flood of bad input or a failing disk cannot flood the journal.
public final class RateLimitedLog: Sendable {
    private let logger: Logger
    private let interval: Duration
    private let state = Mutex<[String: (last: ContinuousClock.Instant, suppressed: Int64)]>([:])

    public init(logger: Logger, interval: Duration) {
        self.logger = logger
        self.interval = interval
    }

    public func warning(key: String, count: Int64, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata) {
        log(.warning, key: key, count: count, message(), metadata: metadata)
    }

    public func error(key: String, count: Int64, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata) {
        log(.error, key: key, count: count, message(), metadata: metadata)
    }

    private func log(
        _ level: Logger.Level, key: String, count: Int64, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata
    ) {
        let now = ContinuousClock.now
        let total: Int64? = state.withLock { entries in
            if let entry = entries[key], entry.last.duration(to: now) < interval {
                entries[key] = (entry.last, entry.suppressed + count)
                return nil
            }
            let suppressed = entries[key]?.suppressed ?? 0
            entries[key] = (now, 0)
            return suppressed + count
        }
        guard let total else { return }
        var metadata = metadata
        metadata["count"] = "\(total)"
        logger.log(level: level, message(), metadata: metadata)
    }
}
