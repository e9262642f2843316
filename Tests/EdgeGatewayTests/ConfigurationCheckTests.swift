import Foundation
import Testing

@testable import edge_gateway

/// What `check-config` and `run` are told about a configuration, read in-process from an
/// environment given as a dictionary (no file, no process).
@Suite struct ConfigurationCheckTests {
    @Test func theBuiltInDefaultsRaiseNoWarningAndNameNoVariable() async throws {
        let configuration = try await GatewayConfiguration.load(file: nil, environment: [:])
        #expect(configuration.warnings.isEmpty, "\(configuration.warnings)")
        #expect(configuration.variables.isEmpty, "\(configuration.variables)")
        #expect(configuration.resolved["hub.id"]?.value == configuration.hubID)
        #expect(configuration.resolved["store.path"]?.value == "./var/outbox.db")
    }

    static let contradictions: [([String: String], String)] = [
        (["DEVICES_REQUIRE_REGISTRATION": "true"], "devices.requireRegistration"),
        (["UPSTREAM_TLS_INSECURE": "true"], "upstream.tls.insecure"),
        (["MQTT_PASSWORD": "pw"], "mqtt.password"),
        (["UPSTREAM_PASSWORD": "pw"], "upstream.password"),
        (["MQTT_RECONNECT_BASE_MS": "9000"], "mqtt.reconnectBaseMs"),  // the cap is 5000
        (["UPSTREAM_RECONNECT_CAP_MS": "100"], "upstream.reconnectBaseMs"),  // the base is 500
        (["DIALOG_TRUST_DEVICE_USER_ID": "true"], "dialog.trustDeviceUserId"),
        (["AUDIO_ENABLED": "true"], "audio.enabled"),
        (["ML_TLS_SERVER_NAME": "ml.lan"], "ml.tls.serverName"),
    ]

    @Test(arguments: contradictions)
    func eachContradictionIsOneWarningNamingItsKey(environment: [String: String], key: String) async throws {
        let configuration = try await GatewayConfiguration.load(file: nil, environment: environment)
        #expect(configuration.warnings.map(\.key) == [key], "\(configuration.warnings)")
    }

    /// The same settings with what they need beside them are no contradiction.
    @Test func aSettingWithItsPartnerRaisesNoWarning() async throws {
        let registration = [
            "REGISTRATION_ENABLED": "true", "REGISTRATION_ADMIN_USERNAME": "gw-admin",
            "USERS_BASE_URL": "http://127.0.0.1:9", "REGISTRATION_REGISTRY_URL": "http://127.0.0.1:9",
            "REGISTRATION_BILLING_URL": "http://127.0.0.1:9",
        ]
        let partnered = try await GatewayConfiguration.load(
            file: nil,
            environment: registration.merging([
                "DEVICES_REQUIRE_REGISTRATION": "true", "DIALOG_TRUST_DEVICE_USER_ID": "true",
                "MQTT_USERNAME": "gw", "MQTT_PASSWORD": "pw", "AUDIO_ENABLED": "true", "ML_ENDPOINTS": "127.0.0.1:9",
                "ML_TLS_ENABLED": "true", "ML_TLS_SERVER_NAME": "ml.lan",
            ]) { $1 })
        #expect(partnered.warnings.isEmpty, "\(partnered.warnings)")
        #expect(partnered.ingress.requireRegistration)
    }

    /// With TLS on, `insecure` turns verification off: a warning of its own, not "no effect".
    @Test func insecureTLSWithACAIsTheVerificationWarning() async throws {
        let ca = FileManager.default.temporaryDirectory.appendingPathComponent("edge-gateway-ca-\(UUID().uuidString).pem")
        try Data("not checked here".utf8).write(to: ca)
        defer { try? FileManager.default.removeItem(at: ca) }
        let configuration = try await GatewayConfiguration.load(
            file: nil, environment: ["UPSTREAM_TLS_CA_FILE": ca.path, "UPSTREAM_TLS_INSECURE": "true"])
        #expect(configuration.warnings.map(\.key) == ["upstream.tls.insecure"])
        #expect(configuration.warnings.first?.problem.contains("does not verify the server") == true, "\(configuration.warnings)")
    }

    /// Every key can be set from the environment by the documented rule (upper case, dots to
    /// underscores, camelCase split), and the configuration names that variable.
    @Test func everyKeyNamesTheVariableThatSetsIt() async throws {
        let defaults = try await GatewayConfiguration.load(file: nil, environment: [:])
        // Lists and empty values have no environment spelling of their default.
        let settable = defaults.effective.filter { !$0.value.isEmpty && !$0.value.hasPrefix("[") && $0.value != "<redacted>" }
        #expect(settable.count > 80, "most keys have a default with an environment spelling")
        let environment = Dictionary(uniqueKeysWithValues: settable.map { (Self.variable($0.key), $0.value) })
        let configuration = try await GatewayConfiguration.load(file: nil, environment: environment)
        for (key, _) in settable {
            #expect(configuration.variables[key] == Self.variable(key), "\(key)")
        }
        #expect(configuration.warnings.isEmpty, "\(configuration.warnings)")
    }

    @Test(arguments: [
        ("MQTT_PORT", "abc", "mqtt.port (from environment variable MQTT_PORT): expected a whole number, got 'abc'"),
        ("STORE_WHEN_FULL", "sometimes", "store.whenFull (from environment variable STORE_WHEN_FULL): 'sometimes' is not one of"),
        ("ML_BREAKER_FAILURE_RATIO", "2", "ml.breaker.failureRatio (from environment variable ML_BREAKER_FAILURE_RATIO): 2.0 is out of range"),
        ("AUDIO_VAD_MIN_SPEECH_MS", "1", "audio.vad.minSpeechMs (from environment variable AUDIO_VAD_MIN_SPEECH_MS): 1 is out of range"),
        ("AUDIO_WAKE_ENDPOINT", "tcp://127.0.0.1:10400", "audio.wake.endpoint (from environment variable AUDIO_WAKE_ENDPOINT): 'tcp://127.0.0.1:10400' is not wyoming://host:port"),
        ("AUDIO_WAKE_ENDPOINT", "wyoming://127.0.0.1:99999", "audio.wake.endpoint (from environment variable AUDIO_WAKE_ENDPOINT): 'wyoming://127.0.0.1:99999' is not wyoming://host:port"),
        ("AUDIO_WAKE_MODE", "sometimes", "audio.wake.mode (from environment variable AUDIO_WAKE_MODE): 'sometimes' is not one of: vad, wake, both"),
        ("AUDIO_WAKE_MODE", "wake", "audio.wake.mode (from environment variable AUDIO_WAKE_MODE): 'wake' needs a wake-word server: set audio.wake.endpoint"),
        ("AUDIO_WAKE_BUFFER_MS", "5", "audio.wake.bufferMs (from environment variable AUDIO_WAKE_BUFFER_MS): 5 is out of range"),
        ("DEVICES_ACK_QOS", "2", "devices.ackQos (from environment variable DEVICES_ACK_QOS): 2 is out of range 0...1"),
        ("STORE_REMOVAL_DELAY_MS", "60001", "store.removalDelayMs (from environment variable STORE_REMOVAL_DELAY_MS): 60001 is out of range"),
        ("STORE_REMOVAL_DELAY_MS", "-1", "store.removalDelayMs (from environment variable STORE_REMOVAL_DELAY_MS): -1 is out of range"),
        ("UPSTREAM_QUICK_RETRIES", "11", "upstream.quickRetries (from environment variable UPSTREAM_QUICK_RETRIES): 11 is out of range 0...10"),
        ("UPSTREAM_QUICK_RETRIES", "-1", "upstream.quickRetries (from environment variable UPSTREAM_QUICK_RETRIES): -1 is out of range 0...10"),
        ("STORE_EVENT_LOG_BYTES", "-1", "store.eventLogBytes (from environment variable STORE_EVENT_LOG_BYTES): -1 is out of range"),
        ("STORE_EVENT_LOG_BYTES", "268435457", "store.eventLogBytes (from environment variable STORE_EVENT_LOG_BYTES): 268435457 is out of range"),
        ("STORE_EVENT_LOG_BYTES", "4096", "store.eventLogBytes (from environment variable STORE_EVENT_LOG_BYTES): must be 0 (off) or at least 65536"),
        ("STORE_EVENT_LOG_SECONDS", "0", "store.eventLogSeconds (from environment variable STORE_EVENT_LOG_SECONDS): 0 is out of range"),
        ("STORE_EVENT_LOG_SECONDS", "3601", "store.eventLogSeconds (from environment variable STORE_EVENT_LOG_SECONDS): 3601 is out of range"),
        ("STORE_EVENT_LOG_IDLE_MS", "9", "store.eventLogIdleMs (from environment variable STORE_EVENT_LOG_IDLE_MS): 9 is out of range"),
        ("STORE_EVENT_LOG_IDLE_MS", "600001", "store.eventLogIdleMs (from environment variable STORE_EVENT_LOG_IDLE_MS): 600001 is out of range"),
        ("STORE_MAX_EVICTION_BYTES", "65535", "store.maxEvictionBytes (from environment variable STORE_MAX_EVICTION_BYTES): 65535 is out of range"),
        ("MEMORY_RELEASE_STARTUP_PAGES_SECONDS", "-1", "memory.releaseStartupPagesSeconds (from environment variable MEMORY_RELEASE_STARTUP_PAGES_SECONDS): -1 is out of range"),
        ("MEMORY_RELEASE_STARTUP_PAGES_SECONDS", "86401", "memory.releaseStartupPagesSeconds (from environment variable MEMORY_RELEASE_STARTUP_PAGES_SECONDS): 86401 is out of range"),
    ])
    func aBadValueFromTheEnvironmentNamesTheVariable(variable: String, value: String, message: String) async throws {
        do {
            _ = try await GatewayConfiguration.load(file: nil, environment: [variable: value])
            Issue.record("\(variable)=\(value) was accepted")
        } catch let errors as ConfigurationErrors {
            #expect(errors.errors.count == 1, "\(errors)")
            #expect(errors.description.contains(message), "\(errors)")
        }
    }

    /// `devices.ackQos`: 1 (the contract's QoS) unless set (the device re-sends until it sees `stored` or `duplicate`).
    @Test func theAckQoSIsOneByDefaultAndZeroWhenAsked() async throws {
        let byDefault = try await GatewayConfiguration.load(file: nil, environment: [:])
        #expect(byDefault.ingress.ackQoS == 1)
        #expect(byDefault.effective.first { $0.key == "devices.ackQos" }?.value == "1")
        let zero = try await GatewayConfiguration.load(file: nil, environment: ["DEVICES_ACK_QOS": "0"])
        #expect(zero.ingress.ackQoS == 0)
    }

    /// `memory.releaseStartupPagesSeconds`: the start-up pages go back 30 s after the start unless set; 0 keeps them.
    @Test func theStartupPagesGoBackAfterThirtySecondsUnlessTurnedOff() async throws {
        let byDefault = try await GatewayConfiguration.load(file: nil, environment: [:])
        #expect(byDefault.releaseStartupPagesAfter == .seconds(30))
        #expect(byDefault.effective.first { $0.key == "memory.releaseStartupPagesSeconds" }?.value == "30")
        let off = try await GatewayConfiguration.load(file: nil, environment: ["MEMORY_RELEASE_STARTUP_PAGES_SECONDS": "0"])
        #expect(off.releaseStartupPagesAfter == nil)
    }

    /// `store.eventLogBytes`: the event log is on (1 MiB) unless set to 0; 0 and the smallest size are accepted.
    @Test func theEventLogIsOnByDefaultAndOffAtZero() async throws {
        let byDefault = try await GatewayConfiguration.load(file: nil, environment: [:])
        #expect(byDefault.store.eventLogBytes == 1_048_576)
        #expect(byDefault.effective.first { $0.key == "store.eventLogBytes" }?.value == "1048576")
        let off = try await GatewayConfiguration.load(file: nil, environment: ["STORE_EVENT_LOG_BYTES": "0"])
        #expect(off.store.eventLogBytes == 0)
        let smallest = try await GatewayConfiguration.load(file: nil, environment: ["STORE_EVENT_LOG_BYTES": "65536"])
        #expect(smallest.store.eventLogBytes == 65536)
    }

    /// `audio.wake.*`: the endpoint's host and port, the mode it implies, and an endpoint the mode does not use.
    @Test func aWakeEndpointImpliesWakeModeAndIsWarnedAboutWhereItIsNotUsed() async throws {
        let base = ["AUDIO_ENABLED": "true", "ML_ENDPOINTS": "127.0.0.1:9", "AUDIO_WAKE_ENDPOINT": "wyoming://[::1]:10400"]
        let wake = try await GatewayConfiguration.load(file: nil, environment: base.merging(["AUDIO_WAKE_NAMES": "ok_nabu,hey_jarvis"]) { $1 })
        #expect(wake.audio.wake.host == "::1" && wake.audio.wake.port == 10400)
        #expect(wake.audio.wake.mode == .wake)
        #expect(wake.audio.wake.names == ["ok_nabu", "hey_jarvis"])
        #expect(wake.resolved["audio.wake.mode"]?.value == "wake")
        #expect(wake.warnings.isEmpty, "\(wake.warnings)")
        let both = try await GatewayConfiguration.load(file: nil, environment: base.merging(["AUDIO_WAKE_MODE": "both"]) { $1 })
        #expect(both.audio.wake.mode == .both)
        let unused = try await GatewayConfiguration.load(file: nil, environment: base.merging(["AUDIO_WAKE_MODE": "vad"]) { $1 })
        #expect(unused.warnings.map(\.key) == ["audio.wake.endpoint"], "\(unused.warnings)")
        let off = try await GatewayConfiguration.load(file: nil, environment: base.merging(["AUDIO_ENABLED": "false"]) { $1 })
        #expect(off.warnings.map(\.key) == ["audio.wake.endpoint"], "\(off.warnings)")
        let none = try await GatewayConfiguration.load(file: nil, environment: [:])
        #expect(none.audio.wake.host == nil && none.audio.wake.mode == .vad)
    }

    @Test func fileCheckGivesTheReasonInPlainWords() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("edge-gateway-filecheck-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("gateway.yaml")
        try Data("hub:\n".utf8).write(to: file)
        #expect(FileCheck.readProblem(file.path) == nil)
        #expect(FileCheck.readProblem(directory.appendingPathComponent("missing.yaml").path) == "no such file")
        #expect(FileCheck.readProblem(directory.path) == "is a directory")
        #expect(FileCheck.readProblem(file.appendingPathComponent("below-a-file").path) == "a part of the path is not a directory")
    }

    /// `store.commitIntervalMs` → `STORE_COMMIT_INTERVAL_MS` (README, "Configuration").
    static func variable(_ key: String) -> String {
        var name = ""
        var previous: Character = "."
        for character in key {
            if character == "." {
                name.append("_")
            } else {
                if character.isUppercase, previous.isLowercase { name.append("_") }
                name.append(contentsOf: character.uppercased())
            }
            previous = character
        }
        return name
    }
}
