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
            ("ml.breaker.failureRatio", YAMLScalar.raw("2.5")),
            ("ml.codec", YAMLScalar.raw("mp3")),
            ("users.baseUrl", YAMLScalar.raw("ftp://users")),
            ("users.unknownUserPolicy", YAMLScalar.raw("maybe")),
            ("dialog.maxSessions", YAMLScalar.raw("0")),
            // {text} where an option could stand: a reply starting with "-" would become one.
            ("audio.replyCommand", YAMLScalar.raw(#"["espeak-ng", "--stdout", "{text}"]"#)),
            ("audio.replyCommand", YAMLScalar.raw(#"["espeak-ng", "{text}", "--"]"#)),
            ("audio.replyCommand", YAMLScalar.raw(#"["tts", "{text}."]"#)),
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

        @Test func environmentVariablesOverrideTheFileAndAreValidatedToo() async throws {
            try await withSandbox { sandbox in
                let file = sandbox.url("good.yaml")
                try Self.valid.write(to: file)
                let result = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory,
                    environment: ["STORE_COMMIT_INTERVAL_MS": "7", "UPSTREAM_TLS_INSECURE": "true", "HUB_ID": "hub-env"])
                #expect(result.succeeded, "\(result)")
                let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
                #expect(lines.contains(["store.commitIntervalMs", "7"]), "\(result)")
                #expect(lines.contains(["upstream.tls.insecure", "true"]), "\(result)")
                #expect(lines.contains(["hub.id", "hub-env"]), "\(result)")

                // Lists and the voice keys follow the same rules (a list is comma-separated).
                let voice = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory,
                    environment: [
                        "ML_ENDPOINTS": "10.0.0.5:50051,dns:///ml.lan:50051", "ML_BREAKER_FAILURE_RATIO": "0.25",
                        "USERS_UNKNOWN_USER_POLICY": "deny", "DIALOG_SESSION_TIMEOUT_MS": "2500",
                    ])
                #expect(voice.succeeded, "\(voice)")
                let voiceLines = voice.stdout.split(separator: "\n").map(String.init)
                #expect(voiceLines.contains { $0.hasPrefix("ml.endpoints") && $0.hasSuffix("[10.0.0.5:50051, dns:///ml.lan:50051]") }, "\(voice)")
                for (key, value) in [("ml.breaker.failureRatio", "0.25"), ("users.unknownUserPolicy", "deny"), ("dialog.sessionTimeoutMs", "2500")] {
                    #expect(voiceLines.contains { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) == [key, value] }, "\(key) in \(voice)")
                }

                let bad = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory, environment: ["STORE_COMMIT_INTERVAL_MS": "soon"])
                #expect(Self.isFailureExit(bad.exit), "\(bad)")
                #expect(bad.stderr.contains("store.commitIntervalMs"), "\(bad)")
            }
        }

        @Test func unknownKeyInTheFileFailsCheckConfigNamingIt() async throws {
            try await withSandbox { sandbox in
                var config = Self.valid
                config["store.comitIntervalMs"] = 5
                let file = sandbox.url("typo.yaml")
                try config.write(to: file)
                let result = try await GatewayBinary.run(["check-config", "--config", file.path], in: sandbox.directory)
                #expect(Self.isFailureExit(result.exit), "\(result)")
                #expect(result.stderr.contains("store.comitIntervalMs: unknown key"), "\(result)")
            }
        }

        /// config/gateway.yaml is the documentation of every key: it must pass, and list exactly
        /// the keys the daemon reads.
        @Test func sampleConfigPassesAndListsEveryKeyTheDaemonReads() async throws {
            try await withSandbox { sandbox in
                let sample = GatewayBinary.packageRoot.appendingPathComponent("config/gateway.yaml")
                let result = try await GatewayBinary.run(["check-config", "--config", sample.path], in: sandbox.directory)
                #expect(result.succeeded, "\(result)")
                let read = Set(result.stdout.split(separator: "\n").compactMap { line -> String? in
                    let key = line.split(separator: " ").first.map(String.init) ?? ""
                    return key.contains(".") && !line.contains("(resolved)") ? key : nil
                })
                let documented = Set(Self.dottedKeys(ofYAML: try String(contentsOf: sample, encoding: .utf8)))
                #expect(read == documented, "read but not in the sample: \(read.subtracting(documented)); in the sample but not read: \(documented.subtracting(read))")
            }
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
                let lines = result.stdout.split(separator: "\n").map(String.init)
                #expect(lines.contains { $0.hasPrefix("admin.allowedHosts") && $0.hasSuffix("[hub.example.net, 10.0.0.7]") }, "\(result)")
                #expect(lines.contains { $0.split(separator: " ", omittingEmptySubsequences: true) == ["admin.idleTimeoutSeconds", "5"] }, "\(result)")
                #expect(lines.contains { $0.split(separator: " ", omittingEmptySubsequences: true) == ["admin.maxConnections", "9"] }, "\(result)")
                let bad = try await GatewayBinary.run(
                    ["check-config", "--config", file.path], in: sandbox.directory, environment: ["ADMIN_MAX_CONNECTIONS": "0"])
                #expect(bad.exit == .exited(2) && bad.stderr.contains("admin.maxConnections"), "\(bad)")
            }
        }

        @Test func checkConfigFailsForAMissingFile() async throws {
            try await withSandbox { sandbox in
                let missing = sandbox.url("does-not-exist.yaml")
                let result = try await GatewayBinary.run(["check-config", "--config", missing.path], in: sandbox.directory)
                #expect(Self.isFailureExit(result.exit), "\(result)")
                #expect((result.stdout + result.stderr).contains("does-not-exist.yaml"), "message should name the file: \(result)")
            }
        }

        /// A non-zero exit status; a crash (signal) is not an acceptable way to report bad input.
        static func isFailureExit(_ exit: ProcessExit) -> Bool {
            if case .exited(let code) = exit { return code != 0 }
            return false
        }
    }
}
