import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct CheckConfigTests {
        static let valid: GatewayConfig = [
            "hub.id": "hub-check",
            "mqtt.port": 1883,
            "upstream.host": "cloud.example.com",
            "upstream.port": 8883,
            "upstream.username": "hub-user",
            "upstream.password": "hunter2",
            "store.path": "/tmp/edge-gateway-check/outbox.db",
            "store.whenFull": "rejectNew",
        ]

        @Test func checkConfigPrintsTheEffectiveConfigWithoutThePassword() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("good.yaml")
                try Self.valid.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
                #expect(!result.stdout.contains("hunter2") && !result.stderr.contains("hunter2"), "\(result)")
                #expect(result.stdout.contains("hub-check"), "effective config should show hub.id: \(result)")
                #expect(result.stdout.contains("cloud.example.com"), "\(result)")
                // Defaults are part of the effective config too.
                #expect(result.stdout.contains("maxPayloadBytes") || result.stdout.contains("65536"), "\(result)")
            }
        }

        @Test(arguments: [
            ("mqtt.port", YAMLScalar.raw("notanumber")),
            ("store.whenFull", YAMLScalar.raw("sometimes")),
            ("ml.endpoints", YAMLScalar.raw("[\"no-port-here\"]")),
            ("ml.endpoints", YAMLScalar.raw("[\"wyoming://no-port-here\"]")),
            ("ml.transcription", YAMLScalar.raw("cloud")),
            ("ml.intent", YAMLScalar.raw("wyoming")),
            ("ml.wyoming.transcriptTimeoutMs", YAMLScalar.raw("5")),
            ("ml.breaker.failureRatio", YAMLScalar.raw("2.5")),
            ("ml.codec", YAMLScalar.raw("mp3")),
            ("users.baseUrl", YAMLScalar.raw("ftp://users")),
            ("users.unknownUserPolicy", YAMLScalar.raw("maybe")),
            ("dialog.maxSessions", YAMLScalar.raw("0")),
            // {text} where an option could stand: a reply starting with "-" would become one.
            ("audio.replyCommand", YAMLScalar.raw(#"["espeak-ng", "--stdout", "{text}"]"#)),
            ("audio.replyCommand", YAMLScalar.raw(#"["espeak-ng", "{text}", "--"]"#)),
            ("audio.replyCommand", YAMLScalar.raw(#"["tts", "{text}."]"#)),
            ("audio.tts", YAMLScalar.string("http://127.0.0.1:10200")),
            ("audio.tts", YAMLScalar.string("wyoming://127.0.0.1")),
            ("audio.tts", YAMLScalar.string("wyoming://:10200")),
            ("audio.tts", YAMLScalar.string("wyoming://127.0.0.1:70000")),
            ("audio.ttsTimeoutSeconds", YAMLScalar.raw("0")),
            ("audio.ttsMaxSeconds", YAMLScalar.raw("0")),
            ("dialog.maxFramesPerSession", YAMLScalar.raw("0")),
            ("dialog.maxBufferedAudioBytes", YAMLScalar.raw("12")),
        ])
        func checkConfigRejectsABadValueNamingTheKey(key: String, value: YAMLScalar) async throws {
            try await withSandbox { sandbox in
                var config = Self.valid
                config[key] = value
                let file = sandbox.url("bad.yaml")
                try config.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(Self.isFailureExit(result.exit), "\(result)")
                #expect((result.stdout + result.stderr).contains(key), "message should name \(key): \(result)")
            }
        }

        /// Two ways to speak the hub's replies: neither is preferred, the configuration is refused.
        @Test func aTTSServerAndAReplyCommandTogetherAreRefused() async throws {
            try await withSandbox { sandbox in
                var config = Self.valid
                config["audio.tts"] = "wyoming://127.0.0.1:10200"
                config["audio.replyCommand"] = .raw(#"["espeak-ng", "--stdout"]"#)
                let file = sandbox.url("both.yaml")
                try config.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(Self.isFailureExit(result.exit), "\(result)")
                #expect(result.stderr.contains("audio.tts: is set together with audio.replyCommand"), "\(result)")

                config["audio.replyCommand"] = nil
                config["audio.enabled"] = true
                config["audio.playbackDevice"] = "default"
                config["ml.endpoints"] = .raw(#"["127.0.0.1:50051"]"#)
                config["audio.ttsVoice"] = "en_US-lessac-medium"
                try config.write(to: file)
                let alone = try await GatewayBinary.run(["check-config", "--strict", "--config", file.path], in: sandbox.directory)
                #expect(alone.succeeded, "\(alone)")
                #expect(Self.value("audio.tts", in: alone) == "wyoming://127.0.0.1:10200", "\(alone)")
                #expect(Self.value("audio.ttsVoice", in: alone) == "en_US-lessac-medium", "\(alone)")
                #expect(Self.value("audio.ttsTimeoutSeconds", in: alone) == "10.0", "\(alone)")
                #expect(Self.value("audio.ttsMaxSeconds", in: alone) == "60.0", "\(alone)")
            }
        }

        @Test func environmentVariablesOverrideTheFileAndAreValidatedToo() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("good.yaml")
                try Self.valid.write(to: file)
                let result = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory,
                    environment: ["STORE_COMMIT_INTERVAL_MS": "7", "UPSTREAM_TLS_INSECURE": "true", "HUB_ID": "hub-env"])
                #expect(result.succeeded, "\(result)")
                #expect(Self.value("store.commitIntervalMs", in: result) == "7", "\(result)")
                #expect(Self.value("upstream.tls.insecure", in: result) == "true", "\(result)")
                #expect(Self.value("hub.id", in: result) == "hub-env", "\(result)")
                // Each value from the environment names its variable; one from the file does not.
                #expect(Self.note("store.commitIntervalMs", in: result) == "from environment variable STORE_COMMIT_INTERVAL_MS", "\(result)")
                #expect(Self.note("hub.id", in: result) == "from environment variable HUB_ID", "\(result)")
                #expect(Self.note("upstream.host", in: result) == nil, "\(result)")

                // Lists and the voice keys follow the same rules (a list is comma-separated).
                let voice = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory,
                    environment: [
                        "ML_ENDPOINTS": "10.0.0.5:50051,dns:///ml.lan:50051,wyoming://[::1]:10300", "ML_BREAKER_FAILURE_RATIO": "0.25",
                        "USERS_UNKNOWN_USER_POLICY": "deny", "DIALOG_SESSION_TIMEOUT_MS": "2500",
                    ])
                #expect(voice.succeeded, "\(voice)")
                #expect(Self.value("ml.endpoints", in: voice) == "[10.0.0.5:50051, dns:///ml.lan:50051, wyoming://[::1]:10300]", "\(voice)")
                for (key, value) in [("ml.breaker.failureRatio", "0.25"), ("users.unknownUserPolicy", "deny"), ("dialog.sessionTimeoutMs", "2500")] {
                    #expect(Self.value(key, in: voice) == value, "\(key) in \(voice)")
                }

                let bad = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory, environment: ["STORE_COMMIT_INTERVAL_MS": "soon"])
                #expect(Self.isFailureExit(bad.exit), "\(bad)")
                #expect(bad.stderr.contains("store.commitIntervalMs"), "\(bad)")
            }
        }

        /// An operator who finds no `mqtt.port: abc` in the file must be told to look in the environment.
        @Test func aBadValueFromTheEnvironmentNamesTheVariable() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("good.yaml")
                try Self.valid.write(to: file)
                let result = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory,
                    environment: ["MQTT_PORT": "abc", "ML_BREAKER_FAILURE_RATIO": "7"])
                #expect(result.exit == .exited(2), "\(result)")
                #expect(result.stderr.contains("mqtt.port (from environment variable MQTT_PORT): expected a whole number, got 'abc'"), "\(result)")
                #expect(result.stderr.contains("ml.breaker.failureRatio (from environment variable ML_BREAKER_FAILURE_RATIO): 7.0 is out of range"), "\(result)")
                // A bad value in the file names no variable.
                var config = Self.valid
                config["mqtt.port"] = .raw("abc")
                try config.write(to: file)
                let fromFile = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(fromFile.stderr.contains("  - mqtt.port: expected a whole number, got 'abc'"), "\(fromFile)")
            }
        }

        /// Three mistakes in the file and one in the environment: one run names all four, unknown key included.
        @Test func everyProblemIsReportedInOneRunUnknownKeysIncluded() async throws {
            try await withSandbox { sandbox in
                var config = Self.valid
                config["store.whenFull"] = "sometimes"
                config["dialog.maxSessions"] = 0
                config["store.comitIntervalMs"] = 5
                let file = sandbox.url("three.yaml")
                try config.write(to: file)
                for command in ["check-config", "run"] {
                    let result = try await GatewayBinary.run(
                        [command, "--config", file.path], in: sandbox.directory, environment: ["LIMITS_MAX_PAYLOAD_BYTES": "lots"])
                    #expect(result.exit == .exited(2), "\(command): \(result)")
                    for problem in [
                        "store.whenFull: 'sometimes' is not one of",
                        "dialog.maxSessions: 0 is out of range",
                        "store.comitIntervalMs: unknown key",
                        "limits.maxPayloadBytes (from environment variable LIMITS_MAX_PAYLOAD_BYTES): expected a whole number",
                    ] {
                        #expect(result.stderr.contains(problem), "\(command) should report \(problem): \(result)")
                    }
                    #expect(result.stdout.isEmpty, "\(command): \(result)")
                }
            }
        }

        /// Settings that work but contradict another one, or turn a protection off: a warning that
        /// names the key, exit 0; `--strict` makes it exit 2.
        static let contradictions: [(GatewayConfig, String)] = [
            (["devices.requireRegistration": true], "devices.requireRegistration: has no effect while registration.enabled is off"),
            (["upstream.tls.insecure": true], "upstream.tls.insecure: has no effect without upstream.tls.caFile"),
            (["mqtt.password": "secret-pw"], "mqtt.password: is set but mqtt.username is empty"),
            (["upstream.reconnectBaseMs": 60000, "upstream.reconnectCapMs": 1000], "upstream.reconnectBaseMs: 60000 is above upstream.reconnectCapMs (1000)"),
            (["dialog.trustDeviceUserId": true], "dialog.trustDeviceUserId: has no effect while registration.enabled is off"),
            (["audio.enabled": true], "audio.enabled: the hub microphone is on but ml.endpoints is empty"),
            (["audio.tts": "wyoming://127.0.0.1:10200"], "audio.tts: has no effect without audio.enabled and audio.playbackDevice"),
            (["ml.tls.serverName": "ml.lan"], "ml.tls.serverName: has no effect while ml.tls.enabled is false"),
        ]

        @Test(arguments: contradictions)
        func aContradictionIsAWarningAndFailsOnlyWithStrict(settings: GatewayConfig, warning: String) async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("contradiction.yaml")
                try Self.valid.merging(settings).write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
                #expect(result.stderr.contains("warnings:\n  - " + warning), "\(result)")
                #expect(result.stdout.hasSuffix("configuration OK, with 1 warning\n"), "\(result)")
                #expect(!result.stdout.contains("secret-pw") && !result.stderr.contains("secret-pw"), "\(result)")

                let strict = try await GatewayBinary.run(["check-config", "--strict", "--config", file.path], in: sandbox.directory)
                #expect(strict.exit == .exited(2), "\(strict)")
                #expect(strict.stderr.contains(warning), "\(strict)")
                #expect(strict.stderr.contains("configuration not accepted with --strict: 1 warning"), "\(strict)")
                #expect(!strict.stdout.contains("configuration OK"), "\(strict)")
            }
        }

        /// The warning without a contradiction is gone: `--strict` passes the same file once it is consistent.
        @Test func strictPassesAConsistentConfiguration() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("good.yaml")
                try Self.valid.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--strict", "--config", file.path], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
                #expect(result.stderr.isEmpty, "\(result)")
                #expect(result.stdout.hasSuffix("configuration OK\n"), "\(result)")
            }
        }

        /// An empty `hub.id` is shown as what the daemon uses: the host name, with a note; so are the
        /// paths an empty setting stands for.
        @Test func emptySettingsAreShownAsTheValuesTheDaemonUses() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("no-hub-id.yaml")
                try (["store.path": .string(sandbox.url("state/outbox.db").path)] as GatewayConfig).write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
                let hostName = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "hub"
                #expect(Self.value("hub.id", in: result) == hostName, "\(result)")
                #expect(Self.note("hub.id", in: result)?.contains("the host name") == true, "\(result)")
                #expect(Self.value("users.cachePath", in: result) == sandbox.url("state/users.db").path, "\(result)")
                #expect(Self.value("registration.statePath", in: result) == sandbox.url("state/registrations.db").path, "\(result)")
                #expect(Self.value("mqtt.clientId", in: result) == "edge-gateway-{hubId}", "\(result)")
            }
        }

        @Test func versionPrintsTheVersionAndCommit() async throws {
            try await withSandbox { sandbox in
                let result = try await GatewayBinary.run(["--version"], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
                #expect(result.stdout.wholeMatch(of: /edge-gateway [0-9]+\.[0-9]+\.[0-9]+\S* \(\S+\)\n/) != nil, "\(result)")
                // Built from a git checkout: the commit is the checkout's (Plugins/BuildCommit), not "unknown".
                if FileManager.default.fileExists(atPath: GatewayBinary.packageRoot.appendingPathComponent(".git").path) {
                    let git = try await Tool.output("/usr/bin/git", ["-C", GatewayBinary.packageRoot.path, "rev-parse", "--short=12", "HEAD"], in: sandbox.directory)
                    let head = git.trimmingCharacters(in: .whitespacesAndNewlines)
                    #expect(head.count == 12 && result.stdout.contains("(\(head))"), "\(result) vs HEAD \(head)")
                }
            }
        }

        @Test func unknownKeyInTheFileFailsCheckConfigNamingIt() async throws {
            try await withSandbox { sandbox in
                var config = Self.valid
                config["store.comitIntervalMs"] = 5
                let file = sandbox.url("typo.yaml")
                try config.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.exit == .exited(2), "\(result)")
                #expect(result.stderr.contains("store.comitIntervalMs: unknown key"), "\(result)")
            }
        }

        /// config/gateway.yaml is the documentation of every key: it must pass, and list exactly
        /// the keys the daemon reads.
        @Test func sampleConfigPassesAndListsEveryKeyTheDaemonReads() async throws {
            try await withSandbox { sandbox in
                let sample = GatewayBinary.packageRoot.appendingPathComponent("config/gateway.yaml")
                let result = try await GatewayBinary.run(["check-config", "--strict", "--config", sample.path], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
                #expect(result.stderr.isEmpty, "the sample should raise no warning: \(result)")
                let read = Set(result.stdout.split(separator: "\n").compactMap { line -> String? in
                    let key = line.split(separator: " ").first.map(String.init) ?? ""
                    return key.contains(".") && !line.contains("(resolved)") ? key : nil
                })
                let documented = Set(Self.dottedKeys(ofYAML: try String(contentsOf: sample, encoding: .utf8)))
                #expect(read == documented, "read but not in the sample: \(read.subtracting(documented)); in the sample but not read: \(documented.subtracting(read))")
            }
        }

        /// The sample shows the built-in defaults: with it, the daemon uses exactly what it uses without a file.
        @Test func sampleConfigHoldsTheBuiltInDefaults() async throws {
            try await withSandbox { sandbox in
                let sample = GatewayBinary.packageRoot.appendingPathComponent("config/gateway.yaml")
                let withSample = try await GatewayBinary.run(["check-config", "--config", sample.path], in: sandbox.directory)
                let withoutFile = try await GatewayBinary.run(["check-config"], in: sandbox.directory)
                #expect(withSample.succeeded && withoutFile.succeeded, "\(withSample)\n\(withoutFile)")
                let a = withSample.stdout.split(separator: "\n"), b = withoutFile.stdout.split(separator: "\n")
                #expect(a.count == b.count, "\(withSample)\n\(withoutFile)")
                for (line, other) in zip(a, b) where line != other {
                    Issue.record("the sample differs from the built-in default: '\(line)' vs '\(other)'")
                }
            }
        }

        /// The effective value printed for `key` (without a note), or nil when it is not listed.
        static func value(_ key: String, in result: CommandResult) -> String? {
            guard let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix(key + " ") }) else { return nil }
            let rest = line.dropFirst(key.count).drop { $0 == " " }
            let value = rest.range(of: "  (").map { rest[..<$0.lowerBound] } ?? rest
            return String(value)
        }

        /// The note in parentheses after `key`'s value (where it came from), or nil without one.
        static func note(_ key: String, in result: CommandResult) -> String? {
            guard let line = result.stdout.split(separator: "\n").first(where: { $0.hasPrefix(key + " ") }),
                let open = line.range(of: "  (")
            else { return nil }
            return String(line[open.upperBound...].dropLast())
        }

        /// Dotted paths of the scalar keys of a block-style YAML file indented by two spaces.
        static func dottedKeys(ofYAML text: String) -> [String] {
            var path: [String] = []
            var keys: [String] = []
            for line in text.split(separator: "\n") {
                let trimmed = line.drop { $0 == " " }
                guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), let colon = trimmed.firstIndex(of: ":") else { continue }
                let depth = (line.count - trimmed.count) / 2
                path = Array(path.prefix(depth))
                let key = String(trimmed[..<colon])
                let rest = trimmed[trimmed.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                if rest.isEmpty || rest.hasPrefix("#") {
                    path.append(key)
                } else {
                    keys.append((path + [key]).joined(separator: "."))
                }
            }
            return keys
        }

        /// Beyond loopback without a token anyone on the LAN could use the admin API: a
        /// configuration error for check-config and run alike, not a warning.
        @Test(arguments: ["0.0.0.0", "::", "192.168.1.20", "hub.local"])
        func anAdminHostBeyondLoopbackWithoutATokenIsRefusedByCheckConfigAndRun(host: String) async throws {
            try await withSandbox { sandbox in
                var config = Self.valid
                config["admin.host"] = .string(host)
                let file = sandbox.url("open.yaml")
                try config.write(to: file)
                let line = "admin.token: required when admin.host is not a loopback address"
                for command in ["check-config", "run"] {
                    let result = try await GatewayBinary.run([command, "--config", file.path], in: sandbox.directory)
                    #expect(result.exit == .exited(2), "\(command): \(result)")
                    #expect(result.stderr.contains(line), "\(command): \(result)")
                }
                // With a token (secrets.env's ADMIN_TOKEN) it is allowed.
                let withToken = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory, environment: ["ADMIN_TOKEN": "s3cret"])
                #expect(withToken.succeeded, "\(withToken)")
                #expect(!withToken.stdout.contains("s3cret"), "\(withToken)")
            }
        }

        @Test(arguments: ["127.0.0.1", "127.0.1.1", "localhost", "::1"])
        func aLoopbackAdminHostNeedsNoToken(host: String) async throws {
            try await withSandbox { sandbox in
                var config = Self.valid
                config["admin.host"] = .string(host)
                let file = sandbox.url("loopback.yaml")
                try config.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
            }
        }

        @Test func adminAllowedHostsIsAListAlsoFromTheEnvironment() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("good.yaml")
                try Self.valid.write(to: file)
                let result = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory,
                    environment: ["ADMIN_ALLOWED_HOSTS": "hub.example.net, 10.0.0.7", "ADMIN_IDLE_TIMEOUT_SECONDS": "5", "ADMIN_MAX_CONNECTIONS": "9"])
                #expect(result.succeeded, "\(result)")
                #expect(Self.value("admin.allowedHosts", in: result) == "[hub.example.net, 10.0.0.7]", "\(result)")
                #expect(Self.value("admin.idleTimeoutSeconds", in: result) == "5", "\(result)")
                #expect(Self.value("admin.maxConnections", in: result) == "9", "\(result)")
                let bad = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory, environment: ["ADMIN_MAX_CONNECTIONS": "0"])
                #expect(bad.exit == .exited(2) && bad.stderr.contains("admin.maxConnections"), "\(bad)")
            }
        }

        @Test func checkConfigFailsForAMissingFileSayingWhy() async throws {
            try await withSandbox { sandbox in
                let missing = sandbox.url("does-not-exist.yaml")
                let directory = try sandbox.makeDirectory("a-directory.yaml")
                for (path, reason) in [(missing.path, "no such file"), (directory.path, "is a directory")] {
                    for command in ["check-config", "run"] {
                        let result = try await GatewayBinary.run([command, "--config", path], in: sandbox.directory)
                        #expect(result.exit == .exited(2), "\(result)")
                        #expect(result.stderr.contains("cannot read \(path): \(reason)"), "\(result)")
                    }
                }
            }
        }

        /// The errno's reason reaches the operator (not testable as root, who may read anything).
        @Test(.enabled(if: getuid() != 0, "root reads every file")) func anUnreadableFileSaysPermissionDenied() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("private.yaml")
                try Self.valid.write(to: file)
                try FileManager.default.setAttributes([.posixPermissions: 0o000], ofItemAtPath: file.path)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.exit == .exited(2), "\(result)")
                #expect(result.stderr.contains("cannot read \(file.path): permission denied"), "\(result)")
            }
        }

        /// A TLS file that cannot be read is named with its key and the reason.
        @Test func anUnreadableTLSFileNamesTheKeyAndTheReason() async throws {
            try await withSandbox { sandbox in
                let missing = sandbox.url("no-ca.pem")
                var config = Self.valid
                config["upstream.tls.caFile"] = .string(missing.path)
                let file = sandbox.url("tls.yaml")
                try config.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(result.exit == .exited(2), "\(result)")
                #expect(result.stderr.contains("upstream.tls.caFile: cannot read \(missing.path): no such file"), "\(result)")
            }
        }

        /// A non-zero exit status; a crash (signal) is not an acceptable way to report bad input.
        static func isFailureExit(_ exit: ProcessExit) -> Bool {
            if case .exited(let code) = exit { return code != 0 }
            return false
        }
    }
}
