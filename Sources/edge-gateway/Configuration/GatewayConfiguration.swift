import Admin
import CloudToDevice
import Commands
import DeviceLink
import Dialog
import Foundation
import GatewayCore
import MLLink
import MQTT
import Outbox
import Registration
import Upstream
import Users

/// Everything the daemon reads from its configuration, resolved and validated. Its description
/// is the effective values with secrets redacted, so interpolating it never leaks a password.
struct GatewayConfiguration: CustomStringConvertible, CustomDebugStringConvertible {
    var description: String { effective.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
    var debugDescription: String { description }

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
    var ml: MLConfiguration
    var users: UsersConfiguration
    var dialog: DialogConfiguration
    /// The dialog's own connection to the device broker (`{mqtt.clientId}-dialog`, clean session).
    var dialogBroker: MQTTClientConfiguration
    var registration: RegistrationConfiguration
    /// The registration's connection to the device broker (`{mqtt.clientId}-registration`, persistent).
    var registrationBroker: MQTTClientConfiguration
    /// The admin identity's connection for broker accounts (`{mqtt.clientId}-dynsec`).
    var dynsecBroker: MQTTClientConfiguration
    var admin: AdminConfiguration
    /// `devices.requireRegistration` is on but registration is off, so it cannot be honoured.
    var requireRegistrationIgnored = false
    var audio: HubMicrophoneConfiguration
    /// The user the hub's microphone speaks for (`audio.userId`).
    var audioUserID: String?
    /// The microphone's push-to-talk connection (`{mqtt.clientId}-mic`, clean session).
    var microphoneBroker: MQTTClientConfiguration
    /// Cloud commands (`commands.*`) and the shadow, with the hub's id.
    var cloudToDevice: CloudToDeviceConfiguration
    /// Where the commands are kept (`commands.statePath`).
    var commandsPath: String
    /// Where the shadows are kept (`shadow.statePath`).
    var shadowPath: String
    /// Their connection to the device broker (`{mqtt.clientId}-commands`, persistent session).
    var commandsBroker: MQTTClientConfiguration
    /// When the executable's start-up pages go back to the kernel (`memory.releaseStartupPagesSeconds`
    /// after the services start); nil: never.
    var releaseStartupPagesAfter: Duration?
    var logLevel: LogLevel
    var logFormat: LogFormat
    /// Effective values, secrets redacted, for `check-config` and the start-up log.
    var effective: [(key: String, value: String)]
    /// Secrets' per-process hashes (see ``ConfigValues/secretHashes``).
    var secretHashes: [String: Int] = [:]
    /// Keys in the file that the gateway does not know (likely typos).
    var unknownKeys: [String]
    /// `hub.id` was not configured and the host name stands in for it.
    var hubIDFromHostName = false
    /// Settings that work but contradict another one or turn a protection off (logged at start).
    var warnings: [ConfigurationWarning] = []
    /// Keys set by an environment variable, with its name (`mqtt.port` → `MQTT_PORT`).
    var variables: [String: String] = [:]
    /// Values worked out from an empty setting (`hub.id` → the host name), with how.
    var resolved: [String: (value: String, note: String)] = [:]

    /// The device edge's connections: the registration's only with `registration.enabled`, the
    /// microphone's only with `audio.enabled`.
    var deviceLink: DeviceLinkConfiguration {
        DeviceLinkConfiguration(
            hubID: hubID, events: deviceBroker, audio: dialogBroker,
            registrations: registration.enabled ? registrationBroker : nil,
            accounts: registration.enabled ? dynsecBroker : nil,
            listen: audio.enabled ? microphoneBroker : nil,
            commands: cloudToDevice.enabled ? commandsBroker : nil)
    }
}
