import Logging
import Systemd

enum LoggingSetup {
    /// Installs the process-wide log handler for the configured format and level. Call once.
    static func bootstrap(format: GatewayConfiguration.LogFormat, level: GatewayConfiguration.LogLevel) {
        let level = Logger.Level(rawValue: level.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler
            switch format {
            case .journald: handler = JournaldLogHandler(label: label)
            case .text: handler = GatewayStreamLogHandler(label: label, style: .text)
            case .json: handler = GatewayStreamLogHandler(label: label, style: .json)
            }
            handler.logLevel = level
            return handler
        }
    }
}
