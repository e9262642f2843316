import Logging
import Metrics
import Reporting
import Synchronization
import Systemd

enum LoggingSetup {
    /// The level every handler consults on each call, so a configuration reload (`log.level`)
    /// changes it for loggers that already exist.
    static let level = Atomic<UInt8>(LevelCode.encode(.info))
    /// The last warnings and errors, for the status page (``AdminSources/recentProblems``).
    static let recent = RecentLog(capacity: 30)

    /// Installs the process-wide log handler for the configured format and level. Call once.
    static func bootstrap(format: GatewayConfiguration.LogFormat, level: GatewayConfiguration.LogLevel) {
        setLevel(level)
        LoggingSystem.bootstrap { label in
            let handler: any LogHandler
            switch format {
            case .journald: handler = JournaldLogHandler(label: label)
            case .text: handler = GatewayStreamLogHandler(label: label, style: .text)
            case .json: handler = GatewayStreamLogHandler(label: label, style: .json)
            }
            return SharedLevelLogHandler(inner: handler, label: label)
        }
    }

    static func setLevel(_ level: GatewayConfiguration.LogLevel) {
        self.level.store(LevelCode.encode(Logger.Level(rawValue: level.rawValue) ?? .info), ordering: .relaxed)
    }

    enum LevelCode {
        static let all = Logger.Level.allCases
        static func encode(_ level: Logger.Level) -> UInt8 { UInt8(all.firstIndex(of: level) ?? 2) }
        static func decode(_ code: UInt8) -> Logger.Level { all[Int(min(code, UInt8(all.count - 1)))] }
    }
}

/// A handler whose level is the process-wide one of ``LoggingSetup/level`` (setting it on one
/// logger sets it for all, which is what a reload means).
///
/// It also keeps warnings and worse in ``LoggingSetup/recent`` and counts them by level
/// (`gateway_log_messages_total`), so an operator sees them on the status page and can alert on them.
struct SharedLevelLogHandler: LogHandler {
    var inner: any LogHandler
    var label: String

    var logLevel: Logger.Level {
        get { LoggingSetup.LevelCode.decode(LoggingSetup.level.load(ordering: .relaxed)) }
        set { LoggingSetup.level.store(LoggingSetup.LevelCode.encode(newValue), ordering: .relaxed) }
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        inner.log(event: event)
        guard event.level >= .warning else { return }
        var merged = inner.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        LoggingSetup.recent.record(level: event.level, logger: label, message: "\(event.message)", metadata: merged)
        // Made per message (warnings are rare): a counter made before the metrics system is
        // bootstrapped would stay a no-op.
        Counter(label: "gateway.log.messages.total", dimensions: [("level", event.level.rawValue)]).increment()
    }
}
