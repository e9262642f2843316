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
    }
}
