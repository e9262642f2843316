import Logging
import Metrics
import Synchronization

/// Requests and connections the admin server refuses before any route runs, counted as
/// `gateway.admin.requests.rejected.total{reason}` and logged: at warning at most once per reason every
/// `logInterval` (with how many were refused in between), otherwise at debug, so a flood cannot
/// fill the journal.
final class AdminRejections: Sendable {
    enum Reason: String, CaseIterable, Sendable {
        /// `Host` names something else than the hub (DNS rebinding): 421.
        case misdirectedHost = "misdirected_host"
        /// A state-changing request or WebSocket upgrade from another site's page: 403.
        case foreignOrigin = "foreign_origin"
        /// A body that is not `application/json`: 415.
        case unsupportedMediaType = "unsupported_media_type"
        /// Over `admin.maxConnections`: closed when accepted.
        case tooManyConnections = "too_many_connections"
        /// No complete request head within `admin.idleTimeoutSeconds`: closed.
        case idleTimeout = "idle_timeout"
    }

    static let logInterval = Duration.seconds(10)

    private let counters: [Reason: Counter]
    private let logger: Logger
    private let lastWarning = Mutex<[Reason: (at: ContinuousClock.Instant, suppressed: Int)]>([:])

    init(logger: Logger) {
        self.logger = logger
        counters = Dictionary(uniqueKeysWithValues: Reason.allCases.map {
            ($0, Counter(label: "gateway.admin.requests.rejected.total", dimensions: [("reason", $0.rawValue)]))
        })
    }

    /// Counts and logs one refusal; `now` is passed in by tests.
    func reject(_ reason: Reason, _ message: String, metadata: Logger.Metadata = [:], now: ContinuousClock.Instant = .now) {
        counters[reason]?.increment()
        let suppressed = lastWarning.withLock { last -> Int? in
            if let previous = last[reason], now - previous.at < Self.logInterval {
                last[reason] = (previous.at, previous.suppressed + 1)
                return nil
            }
            let count = last[reason]?.suppressed ?? 0
            last[reason] = (now, 0)
            return count
        }
        var metadata = metadata
        metadata["reason"] = "\(reason.rawValue)"
        if let suppressed {
            if suppressed > 0 { metadata["rejected.since_last_warning"] = "\(suppressed)" }
            logger.warning("\(message)", metadata: metadata)
        } else {
            logger.debug("\(message)", metadata: metadata)
        }
    }
}
