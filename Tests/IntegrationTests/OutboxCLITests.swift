import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// `edge-gateway outbox stats|peek` against the store of a running daemon (README, "Operating it").
    @Suite struct OutboxCLITests {
        /// Events per device, all held in the store (nothing drains: the upstream port has no listener).
        static let depths = ["cli-a": 5, "cli-b": 3, "cli-c": 1]

        static func events(_ deviceId: String) -> [DeviceEvent] {
            DeviceEvent.series(deviceId: deviceId, count: depths[deviceId]!)
        }

        /// A running daemon whose store holds `depths`.
        static func bedWithHeldEvents(in sandbox: Sandbox) async throws -> TestBed {
            let bed = try await TestBed.start(in: sandbox, upstream: .unreachable)
            let sent = Dictionary(uniqueKeysWithValues: depths.keys.map { ($0, events($0)) })
            try await bed.publishConcurrently(sent)
            let acks = try await bed.waitForAcks(count: depths.values.reduce(0, +))
            try #require(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty, "\(acks)")
            return bed
        }

        @Test func statsAsTextWhileTheDaemonRunsNamesEveryDeviceWithItsDepth() async throws {
            try await withSandbox { sandbox in
                let bed = try await Self.bedWithHeldEvents(in: sandbox)
                let result = try await bed.gateway.runCLI(["outbox", "stats"])
                #expect(result.succeeded, "\(result)")
                let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
                let total = Self.depths.values.reduce(0, +)
                #expect(lines.contains { $0.first == "depth" && $0.dropFirst().first == "\(total)" }, "total depth \(total): \(result)")
                for (deviceId, depth) in Self.depths {
                    // `DEVICE DEPTH BYTES OLDEST`
                    let row = lines.first { $0.first.map(String.init) == deviceId }
                    #expect(row.map { $0.count > 1 ? String($0[1]) : "" } == "\(depth)", "\(deviceId) with depth \(depth): \(result)")
                }
                #expect(bed.gateway.isRunning)
            }
        }

        @Test func statsAsJSONForOneDeviceListsOnlyThatDevice() async throws {
            try await withSandbox { sandbox in
                let bed = try await Self.bedWithHeldEvents(in: sandbox)
                let result = try await bed.gateway.runCLI(["outbox", "stats", "--json", "--device", "cli-b"])
                #expect(result.succeeded, "\(result)")
                let stats = try #require(JSON.object(result.stdout), "one JSON object: \(result)")
                let devices = stats["devices"] as? [[String: Any]] ?? []
                #expect(devices.count == 1, "\(result.stdout)")
                #expect(devices.first?["deviceId"] as? String == "cli-b", "\(result.stdout)")
                #expect(JSON.int(devices.first?["depth"]) == Self.depths["cli-b"], "\(result.stdout)")
            }
        }

        @Test func peekForOneDeviceWithLimitTwoPrintsItsTwoOldestEventsOnePerLine() async throws {
            try await withSandbox { sandbox in
                let bed = try await Self.bedWithHeldEvents(in: sandbox)
                let result = try await bed.gateway.runCLI(["outbox", "peek", "--device", "cli-a", "--limit", "2"])
                #expect(result.succeeded, "\(result)")
                let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: true)
                #expect(lines.count == 2, "\(result)")
                // `#seq device eventId payload`; the payload is the upstream envelope and may contain spaces.
                let fields = lines.map { $0.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init) }
                let expectedIds = Self.events("cli-a").prefix(2).map(\.eventId)
                #expect(fields.map { $0.count > 2 ? $0[2] : "" } == expectedIds, "oldest first: \(result)")
                #expect(fields.allSatisfy { $0.count == 4 && $0[1] == "cli-a" }, "\(result)")
                let seqs = fields.compactMap { $0.first.flatMap { $0.hasPrefix("#") ? Int($0.dropFirst()) : nil } }
                #expect(seqs.count == 2 && seqs[0] < seqs[1], "#seq, increasing: \(result)")
                for field in fields where field.count == 4 {
                    #expect(JSON.object(field[3])?["eventId"] as? String == field[2], "payload of \(field[2]): \(field[3])")
                }
            }
        }

        @Test func statsWithAStorePathThatDoesNotExistFailsWithAMessageAndCreatesNothing() async throws {
            try await withSandbox { sandbox in
                let missing = sandbox.url("no-such-dir/outbox.db")
                let config: GatewayConfig = ["hub.id": "hub-cli", "store.path": .string(missing.path), "log.format": "text"]
                let file = sandbox.url("missing-store.yaml")
                try config.write(to: file)
                for arguments in [["outbox", "stats"], ["outbox", "stats", "--json"], ["outbox", "peek"]] {
                    let result = try await GatewayBinary.run(arguments + ["--config", file.path], in: sandbox.directory)
                    #expect(result.exit == .exited(1), "exit 1 (README): \(result)")
                    #expect(result.stderr == "no outbox at \(missing.path) (the daemon creates it on first start)\n", "\(result)")
                    #expect(result.stdout.isEmpty, "\(result)")
                }
                #expect(!FileManager.default.fileExists(atPath: missing.deletingLastPathComponent().path),
                        "a read-only command must not create the store")
            }
        }

        /// An empty result says so (on standard error, so a script reading the lines gets none).
        @Test func peekOnAnEmptyOutboxSaysItIsEmpty() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, upstream: .unreachable)
                let result = try await bed.gateway.runCLI(["outbox", "peek"])
                #expect(result.succeeded, "\(result)")
                #expect(result.stdout.isEmpty, "\(result)")
                #expect(result.stderr == "the outbox is empty\n", "\(result)")

                try await bed.device("cli-held").publish(DeviceEvent.series(deviceId: "cli-held", count: 1))
                let acks = try await bed.waitForAcks(count: 1)
                try #require(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty, "\(acks)")
                for arguments in [["outbox", "peek", "--device", "cli-nobody"], ["outbox", "stats", "--device", "cli-nobody"]] {
                    let other = try await bed.gateway.runCLI(arguments)
                    #expect(other.succeeded, "\(other)")
                    #expect(other.stderr == "device cli-nobody has no events in the outbox\n", "\(other)")
                    #expect(!other.stdout.contains("cli-held"), "\(other)")
                }
            }
        }

        /// A file that is not an outbox: a plain-words message naming it, exit 1, and the file untouched.
        @Test func statsOnAFileThatIsNotAnOutboxSaysSoInPlainWords() async throws {
            try await withSandbox { sandbox in
                let store = sandbox.url("outbox.db")
                let garbage = Data(String(repeating: "not a database ", count: 400).utf8)
                try garbage.write(to: store)
                let config: GatewayConfig = ["hub.id": "hub-cli", "store.path": .string(store.path)]
                let file = sandbox.url("garbage-store.yaml")
                try config.write(to: file)
                for arguments in [["outbox", "stats"], ["outbox", "peek"]] {
                    let result = try await GatewayBinary.run(arguments + ["--config", file.path], in: sandbox.directory)
                    #expect(result.exit == .exited(1), "\(result)")
                    #expect(result.stdout.isEmpty, "\(result)")
                    #expect(
                        result.stderr.hasPrefix("the outbox at \(store.path) is damaged") || result.stderr.hasPrefix("cannot read the outbox at \(store.path): "),
                        "\(result)")
                    #expect(!result.stderr.contains("openFailed") && !result.stderr.contains("Error:"), "\(result)")
                }
                #expect(try Data(contentsOf: store) == garbage, "a read-only command must not change the file")
            }
        }
    }
}
