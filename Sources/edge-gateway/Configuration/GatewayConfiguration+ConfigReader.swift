import Configuration
import DeviceLink
import Foundation
import GatewayCore
import MQTT
import Outbox
import SystemPackage
import Upstream
import Yams

extension GatewayConfiguration {
    /// Loads `file` (YAML) with environment-variable overrides on top, and validates every key.
    ///
    /// - Throws: ``ConfigurationErrors`` listing every bad key, or ``ConfigurationError`` for an
    ///   unreadable file.
    static func load(file: String?, environment: [String: String] = ProcessInfo.processInfo.environment) async throws -> GatewayConfiguration {
        var providers: [any ConfigProvider] = [
            EnvironmentVariablesProvider(
                environmentVariables: environment,
                secretsSpecifier: .specific(["MQTT_PASSWORD", "UPSTREAM_PASSWORD"]))
        ]
        var unknown: [String] = []
        if let file {
            guard FileManager.default.isReadableFile(atPath: file) else {
                throw ConfigurationError(key: "--config", problem: "cannot read \(file)")
            }
            do {
                providers.append(try await FileProvider<YAMLSnapshot>(filePath: FilePath(file)))
            } catch {
                throw ConfigurationError(key: "--config", problem: "\(file) is not valid YAML for a configuration: \(error)")
            }
            unknown = (try? unknownKeys(inYAMLFile: file)) ?? []
        }
        var values = ConfigValues(reader: ConfigReader(providers: providers))
        var configuration = read(&values, environment: environment)
        configuration.unknownKeys = unknown
        if !values.errors.isEmpty {
            throw ConfigurationErrors(errors: values.errors)
        }
        return configuration
    }

    private static func read(_ v: inout ConfigValues, environment: [String: String]) -> GatewayConfiguration {
        // hub
        var hubID = v.string("hub.id", default: "")
        if hubID.isEmpty {
            hubID = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "hub"
        }
        if DeviceID(hubID) == nil {
            v.fail("hub.id", "'\(hubID)' must be 1–64 characters of A-Z a-z 0-9 _ -")
        }
        func expand(_ text: String) -> String { text.replacingOccurrences(of: "{hubId}", with: hubID) }

        // device broker
        var device = MQTTClientConfiguration(
            host: v.string("mqtt.host", default: "127.0.0.1"),
            port: v.int("mqtt.port", default: 1883, range: 1...65535),
            clientID: expand(v.string("mqtt.clientId", default: "edge-gateway-{hubId}")),
            cleanSession: false)
        device.username = v.string("mqtt.username", default: "").nonEmpty
        device.password = v.string("mqtt.password", default: "", secret: true).nonEmpty
        device.keepAliveSeconds = v.int("mqtt.keepAliveSeconds", default: 30, range: 5...3600)
        device.reconnectBaseMs = v.int("mqtt.reconnectBaseMs", default: 200, range: 1...600_000)
        device.reconnectCapMs = v.int("mqtt.reconnectCapMs", default: 5000, range: 1...3_600_000)
        device.subscriptions = DeviceIngressConfiguration.subscriptions
        if device.clientID.isEmpty || device.clientID.utf8.count > 128 {
            v.fail("mqtt.clientId", "must be 1–128 bytes")
        }

        // upstream broker
        var up = MQTTClientConfiguration(
            host: v.string("upstream.host", default: "127.0.0.1"),
            port: v.int("upstream.port", default: 1883, range: 1...65535),
            clientID: expand(v.string("upstream.clientId", default: "edge-gateway-{hubId}-upstream")),
            cleanSession: true)
        up.reportsPublishAcks = true
        let topic = UpstreamTopicTemplate(v.string("upstream.topic", default: "hubs/{hubId}/events/{deviceId}"))
        if let problem = topic.validate() { v.fail("upstream.topic", problem) }
        up.username = v.string("upstream.username", default: "").nonEmpty
        up.password = v.string("upstream.password", default: "", secret: true).nonEmpty
        let inflight = v.int("upstream.inflight", default: 100, range: 1...65535)
        up.keepAliveSeconds = v.int("upstream.keepAliveSeconds", default: 30, range: 5...3600)
        up.connectTimeoutSeconds = Double(v.int("upstream.connectTimeoutSeconds", default: 10, range: 1...600))
        up.reconnectBaseMs = v.int("upstream.reconnectBaseMs", default: 500, range: 1...600_000)
        up.reconnectCapMs = v.int("upstream.reconnectCapMs", default: 30_000, range: 1...3_600_000)
        let grace = v.int("upstream.shutdownGraceSeconds", default: 5, range: 0...600)
        let caFile = v.string("upstream.tls.caFile", default: "")
        let certFile = v.string("upstream.tls.certFile", default: "")
        let keyFile = v.string("upstream.tls.keyFile", default: "")
        let insecure = v.bool("upstream.tls.insecure", default: false)
        if !caFile.isEmpty {
            for (key, path) in [("upstream.tls.caFile", caFile), ("upstream.tls.certFile", certFile), ("upstream.tls.keyFile", keyFile)]
            where !path.isEmpty && !FileManager.default.isReadableFile(atPath: path) {
                v.fail(key, "cannot read \(path)")
            }
            if certFile.isEmpty != keyFile.isEmpty {
                v.fail("upstream.tls.certFile", "certFile and keyFile go together (mutual TLS needs both)")
            }
            up.tls = .init(caFile: caFile, certFile: certFile.nonEmpty, keyFile: keyFile.nonEmpty, insecure: insecure)
        } else if !certFile.isEmpty || !keyFile.isEmpty {
            v.fail("upstream.tls.caFile", "set caFile to enable TLS (certFile/keyFile are given)")
        }
        if up.clientID == device.clientID, up.host == device.host, up.port == device.port {
            v.fail("upstream.clientId", "must differ from mqtt.clientId when both point at the same broker")
        }
        up.maxInflightMessages = inflight
        var upstream = UpstreamConfiguration(hubID: hubID)
        upstream.topic = topic
        upstream.inflight = inflight
        upstream.shutdownGrace = .seconds(grace)

        // store
        var path = v.string("store.path", default: "")
        if path.isEmpty {
            let base = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "./var"
            path = (base as NSString).appendingPathComponent("outbox.db")
        }
        var store = OutboxConfiguration(path: path)
        store.maxBytes = Int64(v.int("store.maxBytes", default: 256 * 1024 * 1024, range: 4096...Int(Int64.max / 4)))
        store.maxFileBytes = Int64(v.int("store.maxFileBytes", default: 0, range: 0...Int(Int64.max / 4)))
        if store.maxFileBytes > 0, store.maxFileBytes < store.maxBytes {
            v.fail("store.maxFileBytes", "must be 0 or at least store.maxBytes (\(store.maxBytes))")
        }
        store.maxAgeSeconds = Int64(v.int("store.maxAgeSeconds", default: 7 * 24 * 3600, range: 1...Int(Int32.max)))
        store.whenFull = v.choice("store.whenFull", default: OutboxConfiguration.WhenFull.dropOldest)
        store.synchronous = v.choice("store.synchronous", default: OutboxConfiguration.Synchronous.full)
        store.commitIntervalMs = v.int("store.commitIntervalMs", default: 2, range: 0...1000)
        store.maxBatch = v.int("store.maxBatch", default: 2000, range: 1...100_000)
        store.dedupRetentionSeconds = Int64(v.int("store.dedupRetentionSeconds", default: 24 * 3600, range: 0...Int(Int32.max)))
        store.dedupMaxEntries = v.int("store.dedupMaxEntries", default: 500_000, range: 1...100_000_000)
        store.maintenanceIntervalSeconds = v.int("store.maintenanceIntervalSeconds", default: 30, range: 1...86400)

        // limits
        var ingress = DeviceIngressConfiguration(hubID: hubID)
        ingress.maxPayloadBytes = v.int("limits.maxPayloadBytes", default: 64 * 1024, range: 64...(16 * 1024 * 1024))
        device.messageBufferCapacity = v.int("limits.ingressQueue", default: 4096, range: 1...1_000_000)

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
        }

        return GatewayConfiguration(
            hubID: hubID, deviceBroker: device, upstreamBroker: up, upstream: upstream, ingress: ingress,
            store: store, logLevel: level, logFormat: format, effective: v.effective, unknownKeys: [])
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
