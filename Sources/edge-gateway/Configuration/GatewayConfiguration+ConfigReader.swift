import Admin
import CloudToDevice
import Commands
import Configuration
import DeviceLink
import Dialog
import Foundation
import GatewayCore
import MLLink
import MQTT
import Outbox
import Registration
import Shadow
import SystemPackage
import Upstream
import Users
import Yams

extension GatewayConfiguration {
    /// Loads `file` (YAML) with environment-variable overrides on top, and validates every key.
    ///
    /// - Throws: ``ConfigurationErrors`` listing every bad key and every unknown key of the file
    ///   (with the warnings found on the way), or ``ConfigurationError`` for a file that cannot be
    ///   read or parsed.
    static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> GatewayConfiguration {
        let environmentProvider = EnvironmentVariablesProvider(
            environmentVariables: environment,
            secretsSpecifier: .specific(["MQTT_PASSWORD", "UPSTREAM_PASSWORD"]))
        var providers: [any ConfigProvider] = [environmentProvider]
        var unknown: [String] = []
        if let file {
            if let problem = FileCheck.readProblem(file) {
                throw ConfigurationError(key: "--config", problem: "cannot read \(file): \(problem)")
            }
            do {
                providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(file)))
            } catch {
                throw ConfigurationError(key: "--config", problem: "\(file) is not valid YAML for a configuration: \(error)")
            }
            unknown = (try? unknownKeys(inYAMLFile: file)) ?? []
        }
        var values = ConfigValues(reader: ConfigReader(providers: providers), environment: environmentProvider)
        var configuration = read(&values, environment: environment)
        configuration.unknownKeys = unknown
        if !values.errors.isEmpty {
            throw ConfigurationErrors(errors: values.errors, unknownKeys: unknown, warnings: values.warnings)
        }
        return configuration
    }

    private static func read(_ v: inout ConfigValues, environment: [String: String]) -> GatewayConfiguration {
        // hub
        var hubID = v.string("hub.id", default: "")
        let fromHostName = hubID.isEmpty
        if fromHostName {
            hubID = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "hub"
            v.resolve("hub.id", to: hubID, "empty: the host name, which must be unique across hubs")
        }
        if DeviceID(hubID) == nil {
            v.fail("hub.id", "'\(hubID)' must be 1–64 characters of A-Z a-z 0-9 _ -")
        }
        let device = MQTTClientConfiguration.deviceBroker(&v, hubID: hubID)
        let upstream = UpstreamConfiguration(&v, hubID: hubID)
        var up = MQTTClientConfiguration.upstreamBroker(&v, hubID: hubID, inflight: upstream.inflight)
        if up.clientID == device.clientID, up.addresses.contains(device.addresses[0]) {
            v.fail("upstream.clientId", "must differ from mqtt.clientId when both point at the same broker")
        }
        let store = OutboxConfiguration(&v, environment: environment)
        var ingress = DeviceIngressConfiguration(&v, hubID: hubID)
        let ml = MLConfiguration(&v)
        let users = UsersConfiguration(&v, storePath: store.path)
        // With mqtt.accountPerConnection (the installed secrets.env sets it), each derived
        // connection logs in as "{mqtt.username}-{suffix}" with mqtt.password: the broker binds
        // each of those accounts to its client id "{mqtt.clientId}-{suffix}" and gives it only that
        // connection's topics. Off (the built-in default), they all use mqtt.username.
        let accountPerConnection = v.bool("mqtt.accountPerConnection", default: false)
        if accountPerConnection, device.username == nil {
            v.fail("mqtt.accountPerConnection", "needs mqtt.username (the derived accounts are {mqtt.username}-dialog, -registration, -mic)")
        }
        func derived(_ suffix: String) -> MQTTClientConfiguration {
            var connection = device
            connection.clientID = device.clientID + "-" + suffix
            if accountPerConnection, let username = device.username {
                connection.username = username + "-" + suffix
            }
            return connection
        }
        var dialogBroker = derived("dialog")
        dialogBroker.cleanSession = true
        dialogBroker.messageBufferCapacity = 1024
        dialogBroker.messageBufferBytes = 4 * 1024 * 1024
        var registration = RegistrationConfiguration(&v, storePath: store.path, users: users)
        let dialog = DialogConfiguration(&v, hubID: hubID, ml: ml, users: users, registrationEnabled: registration.enabled)
        let requireRegistrationIgnored = ingress.requireRegistration && !registration.enabled
        if requireRegistrationIgnored {
            ingress.requireRegistration = false
            v.warn(
                "devices.requireRegistration",
                "has no effect while registration.enabled is off (there is no registry to check against): events from any device are taken")
        }
        let admin = AdminConfiguration(&v)
        let audio = HubMicrophoneConfiguration(&v)
        let audioUserID = v.string("audio.userId", default: "").nonEmpty
        if audio.enabled, ml.targets.isEmpty {
            v.warn("audio.enabled", "the hub microphone is on but ml.endpoints is empty: none of its dialogs can be answered")
        }
        var microphoneBroker = derived("mic")
        microphoneBroker.cleanSession = true
        microphoneBroker.messageBufferCapacity = 16
        var registrationBroker = derived("registration")
        registrationBroker.messageBufferCapacity = 256
        // The dynamic-security connection always uses registration.adminUsername/adminPassword.
        var dynsecBroker = derived("dynsec")
        dynsecBroker.cleanSession = true
        dynsecBroker.username = registration.adminUsername
        dynsecBroker.password = registration.adminPassword
        let cloudToDevice = CloudToDeviceConfiguration(
            hubID: hubID, commands: CommandsConfiguration(&v), shadow: ShadowConfiguration(&v), shadowTopic: ShadowConfiguration.topic(&v))
        let commandsPath = CommandsConfiguration.statePath(&v, storePath: store.path)
        let shadowPath = ShadowConfiguration.statePath(&v, storePath: store.path)
        var commandsBroker = derived("commands")
        commandsBroker.messageBufferCapacity = 1024
        // The cloud's commands (and shadow updates) wait for the hub in its persistent upstream session.
        up.subscriptions = CloudToDevice.subscriptions(cloudToDevice)
        if !up.subscriptions.isEmpty { up.cleanSession = false }
        // No device may take the hub's id or one of the gateway's own broker identities.
        registration.reservedIDs.formUnion(
            [hubID, device.clientID, dialogBroker.clientID, registrationBroker.clientID, dynsecBroker.clientID, microphoneBroker.clientID,
             commandsBroker.clientID]
                + [device.username, registration.adminUsername].compactMap { $0 })

        // log
        let level = v.choice("log.level", default: LogLevel.info)
        let formatText = v.string("log.format", default: "")
        var format: LogFormat = environment["JOURNAL_STREAM"] != nil ? .journald : .text
        if !formatText.isEmpty {
            if let chosen = LogFormat(rawValue: formatText) {
                format = chosen
            } else {
                v.fail("log.format", "'\(formatText)' is not one of: journald, text, json")
            }
        } else {
            v.resolve("log.format", to: format.rawValue, "empty: journald when JOURNAL_STREAM is set (under systemd), else text")
        }

        // memory: the executable's pages that start-up mapped go back to the kernel once, this long
        // after the services start (MemoryTrimService); 0 keeps them.
        let startupPagesSeconds = v.int("memory.releaseStartupPagesSeconds", default: 30, range: 0...86_400)

        return GatewayConfiguration(
            hubID: hubID, deviceBroker: device, upstreamBroker: up, upstream: upstream, ingress: ingress,
            store: store, ml: ml, users: users, dialog: dialog, dialogBroker: dialogBroker,
            registration: registration, registrationBroker: registrationBroker, dynsecBroker: dynsecBroker,
            admin: admin, requireRegistrationIgnored: requireRegistrationIgnored, audio: audio, audioUserID: audioUserID,
            microphoneBroker: microphoneBroker, cloudToDevice: cloudToDevice, commandsPath: commandsPath, shadowPath: shadowPath, commandsBroker: commandsBroker,
            releaseStartupPagesAfter: startupPagesSeconds > 0 ? .seconds(startupPagesSeconds) : nil,
            logLevel: level, logFormat: format, effective: v.effective, secretHashes: v.secretHashes, unknownKeys: [],
            hubIDFromHostName: fromHostName, warnings: v.warnings, variables: v.variables, resolved: v.resolved)
    }

    /// Dotted paths of scalar keys in the YAML file that the gateway does not read.
    static func unknownKeys(inYAMLFile file: String) throws -> [String] {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        guard let root = try Yams.compose(yaml: text) else { return [] }
        var found: [String] = []
        func walk(_ node: Node, _ path: [String]) {
            if let mapping = node.mapping {
                for (key, value) in mapping {
                    walk(value, path + [key.string ?? "?"])
                }
            } else {
                found.append(path.joined(separator: "."))
            }
        }
        walk(root, [])
        return found.filter { !knownKeys.contains($0) }
    }

    /// Every key `read` looks at.
    static let knownKeys: Set<String> = {
        var values = ConfigValues(reader: ConfigReader(provider: InMemoryProvider(values: [:])))
        _ = read(&values, environment: [:])
        return Set(values.effective.map(\.key))
    }()
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
