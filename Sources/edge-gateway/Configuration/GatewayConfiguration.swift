import DeviceLink
import Foundation
import GatewayCore
import MQTT
import Outbox
import Upstream

/// Everything the daemon reads from its configuration, resolved and validated.
struct GatewayConfiguration {
    enum LogFormat: String, CaseIterable {
        case journald, text, json
    }

    enum LogLevel: String, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    var hubID: String
    var deviceBroker: MQTTClientConfiguration
    var upstreamBroker: MQTTClientConfiguration
    var upstream: UpstreamConfiguration
    var ingress: DeviceIngressConfiguration
    var store: OutboxConfiguration
    var logLevel: LogLevel
    var logFormat: LogFormat
    /// Effective values, secrets redacted, for `check-config` and the start-up log.
    var effective: [(key: String, value: String)]
    /// Keys in the file that the gateway does not know (likely typos).
    var unknownKeys: [String]
    /// `hub.id` was not configured and the host name stands in for it.
    var hubIDFromHostName = false
}
