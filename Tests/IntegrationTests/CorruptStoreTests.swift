import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct CorruptStoreTests {
        @Test func corruptDatabaseIsSetAsideAndTheDaemonStartsWithAFreshStore() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.make(in: sandbox)
                let store = bed.gateway.storePath
                var garbage = Data("this is not an SQLite database\n".utf8)
                garbage.append(contentsOf: (0..<16_384).map { _ in UInt8.random(in: 0...255) })
                try garbage.write(to: store)

                try await bed.gateway.start()
                let directory = store.deletingLastPathComponent()
                let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
                let setAside = names.filter { $0.hasPrefix(store.lastPathComponent + ".corrupt-") }
                #expect(!setAside.isEmpty, "files beside the store: \(names.sorted())")
                if let name = setAside.first {
                    let kept = try Data(contentsOf: directory.appendingPathComponent(name))
                    #expect(kept == garbage, "the set-aside file should hold the corrupt bytes")
                }

                let events = DeviceEvent.series(deviceId: "after-corrupt", count: 5)
                try await bed.device("after-corrupt").publish(events)
                let acks = try await bed.waitForAcks(count: 5)
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored"))")
                let upstream = try await bed.waitForUpstream(count: 5)
                #expect(upstream.map(\.eventId) == events.map(\.eventId))
            }
        }

        /// Corruption found while running (here: a damaged schema, written with the sqlite3 tool
        /// under the daemon) stops the daemon in order with a failure exit, so systemd restarts it;
        /// the restart sets the file aside and serves with a fresh store.
        @Test func corruptionFoundWhileRunningStopsTheDaemonWhichRestartsOnAFreshStore() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, upstream: .unreachable)
                let store = bed.gateway.storePath
                try await bed.device("c-1").publish(DeviceEvent.series(deviceId: "c-1", count: 5))
                try await bed.waitForAcks(count: 5)

                // Damage the schema and make every connection reload it.
                let version = try await Self.sqlite(store, "PRAGMA schema_version", in: sandbox)
                _ = try await Self.sqlite(
                    store,
                    "PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql='CREATE TABLE events(' WHERE name='events'; "
                        + "PRAGMA schema_version=\((Int(version) ?? 0) + 1);",
                    in: sandbox)
                try await bed.device("c-1").publish(DeviceEvent.series(deviceId: "c-1", count: 1, from: 5))

                let exit = try await bed.gateway.waitForExit(timeout: .seconds(30))
                #expect(exit == .exited(1), "\(String(describing: exit))\n\(bed.gateway.logTail())")
                #expect(bed.gateway.logText.contains("outbox failed"))
                #expect(FileManager.default.fileExists(atPath: store.path + ".needs-check"))

                try await bed.gateway.start()
                let names = try FileManager.default.contentsOfDirectory(atPath: store.deletingLastPathComponent().path)
                #expect(names.contains { $0.hasPrefix(store.lastPathComponent + ".corrupt-") }, "\(names.sorted())")
                #expect(!names.contains { $0.hasSuffix(".needs-check") }, "\(names.sorted())")
                try await bed.device("c-1").publish(DeviceEvent.series(deviceId: "c-1", count: 1, from: 100))
                let acks = try await bed.waitForAcks(count: 7)
                #expect(acks.last?.isStored == true, "\(acks.suffix(2))")
            }
        }

        /// Runs the sqlite3 tool against the store and returns what it printed. It waits up to 10 s
        /// for the write lock: with the event log the daemon's transaction stays open until the store
        /// has been idle for `store.eventLogIdleMs`.
        static func sqlite(_ database: URL, _ sql: String, in sandbox: Sandbox) async throws -> String {
            let output = sandbox.url("sqlite-\(UUID().uuidString.prefix(8)).out")
            let child = try ChildProcess(
                executable: "/usr/bin/sqlite3", arguments: ["-cmd", ".timeout 10000", database.path, sql], outputFile: output)
            guard let exit = try await child.waitForExit(timeout: .seconds(30)), exit == .exited(0) else {
                throw HarnessError("sqlite3 failed\n\(LogFile.tail(output))")
            }
            return LogFile.text(output).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}
