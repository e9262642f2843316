import Foundation
import Testing

@testable import Outbox
import SQLite

/// Issue 17: the per-device list of `/api/outbox` comes from counts the writer keeps in memory, not
/// from a `GROUP BY` over the table. These tests hold the counts against the table itself.
@Suite struct DeviceTalliesTests {
    /// What the table says per device: events, bytes, and `received_at` of the device's lowest `seq`.
    private static func reference(_ path: String) throws -> [String: (count: Int64, bytes: Int64, oldest: Int64)] {
        let db = try SQLiteConnection.open(path: path, readOnly: true)
        let stmt = try db.statement(
            "SELECT device, count(*), sum(size), (SELECT received_at FROM events f WHERE f.device = e.device ORDER BY seq LIMIT 1) FROM events e GROUP BY device")
        var result: [String: (count: Int64, bytes: Int64, oldest: Int64)] = [:]
        while try stmt.step() { result[stmt.text(0)] = (stmt.int64(1), stmt.int64(2), stmt.int64(3)) }
        stmt.reset()
        return result
    }

    /// Events are 100 s apart in `received_at`, so ages compared a moment apart still tell them apart.
    private static func checkAgainstTheTable(_ outbox: Outbox, _ inspector: OutboxInspector, path: String, step: Int) async throws {
        await outbox.waitForQueuedWrites()
        let stats = try await inspector.stats()
        let expected = try reference(path)
        let now = Date().timeIntervalSince1970
        #expect(stats.devices.count == expected.count, "step \(step): \(stats.devices.map(\.deviceId)) vs \(expected.keys.sorted())")
        for device in stats.devices {
            guard let want = expected[device.deviceId] else {
                Issue.record("step \(step): \(device.deviceId) listed but has no events")
                continue
            }
            #expect(device.depth == want.count, "step \(step) \(device.deviceId)")
            #expect(device.bytes == want.bytes, "step \(step) \(device.deviceId)")
            let wantAge = now - Double(want.oldest) / 1000
            #expect(abs((device.oldestAgeSeconds ?? -1) - wantAge) < 30, "step \(step) \(device.deviceId): \(device.oldestAgeSeconds ?? -1) vs \(wantAge)")
        }
        #expect(stats.devices.map(\.depth) == stats.devices.map(\.depth).sorted(by: >), "most events first")
    }

    @Test func perDeviceCountsMatchTheTableThroughAppendsRemovalsAndEviction() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(
            configuration: store.configuration {
                $0.maxBytes = 40_000
                $0.whenFull = .dropOldest
                $0.removalDelayMs = 0
            }, logger: testLogger)
        let inspector = try outbox.makeInspector()
        #expect(outbox.perDeviceCountsReady, "an empty store needs no scan")
        var generator = SeededGenerator(seed: 17)
        // 300 steps of up to 6 events 100 s apart all lie in the past.
        let base = Int64(Date().timeIntervalSince1970 * 1000) - 200_000_000
        var clock: Int64 = 0
        for step in 0..<300 {
            if Int.random(in: 0..<3, using: &generator) == 0 {
                // Forwarded: a random handful of what is stored, oldest or not.
                let pending = try await outbox.pending(after: 0, limit: 500)
                outbox.remove(pending.filter { _ in Int.random(in: 0..<4, using: &generator) == 0 }.map(\.seq))
            } else {
                var batch: [OutboxRecord] = []
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    clock += 1
                    let device = "d\(Int.random(in: 0..<7, using: &generator))"
                    batch.append(record(device, "e\(clock)", size: Int.random(in: 50...900, using: &generator), at: base + clock * 100_000))
                }
                _ = await outbox.append(batch)
            }
            if step % 10 == 9 { try await Self.checkAgainstTheTable(outbox, inspector, path: store.path, step: step) }
        }
        #expect(try await outbox.stats().drops["capacity", default: 0] > 0, "the cap was reached: eviction was exercised")
        await outbox.close()
    }

    @Test func aStoreOpenedWithABacklogIsCountedInTheBackgroundWhileItChanges() async throws {
        let store = try TemporaryStore()
        let base = Int64(Date().timeIntervalSince1970 * 1000) - 50_000_000
        var clock: Int64 = 0
        do {
            let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
            // More than two scan chunks, and one device that only shows up near the end.
            for _ in 0..<(OutboxWriter.tallyScanChunk * 5 / 2 / 500) {
                var batch: [OutboxRecord] = []
                for index in 0..<500 {
                    clock += 1
                    batch.append(record("d\(index % 5)", "e\(clock)", size: 60, at: base + clock * 1_000))
                }
                _ = await outbox.append(batch)
            }
            clock += 1
            _ = await outbox.append([record("late", "e\(clock)", size: 60, at: base + clock * 1_000)])
            await outbox.close()
        }
        let outbox = try Outbox.open(configuration: store.configuration { $0.removalDelayMs = 0 }, logger: testLogger)
        let inspector = try outbox.makeInspector()
        // Changes while the scan runs: forward the first events of every device (rows the scan may
        // or may not have reached), forward the late device's only event, and add new ones.
        let first = try await outbox.pending(after: 0, limit: 300)
        outbox.remove(first.map(\.seq))
        let late = try await outbox.pending(after: Int64(clock) - 2, limit: 10).filter { $0.device == "late" }
        outbox.remove(late.map(\.seq))
        for index in 0..<20 {
            clock += 1
            _ = await outbox.append([record(index % 2 == 0 ? "new" : "d1", "e\(clock)", size: 70, at: base + clock * 1_000)])
        }
        for _ in 0..<500 where !outbox.perDeviceCountsReady { try await Task.sleep(for: .milliseconds(20)) }
        #expect(outbox.perDeviceCountsReady)
        try await Self.checkAgainstTheTable(outbox, inspector, path: store.path, step: 0)
        // And the counts keep up afterwards: forward the oldest of each device again.
        outbox.remove(try await outbox.pending(after: 0, limit: 40).map(\.seq))
        try await Self.checkAgainstTheTable(outbox, inspector, path: store.path, step: 1)
        await outbox.close()
    }

    /// The bookkeeping itself, step by step: changes that race the scan are neither lost nor
    /// counted twice, and an oldest event taken from a new one is replaced by older scanned ones.
    @Test func changesDuringTheScanAreCountedOnce() {
        let tallies = DeviceTallies(lastSeq: 10, empty: false)
        #expect(tallies.snapshot() == nil, "nothing is answered from a half-counted store")
        // Appended while scanning: a's first known event is tentative.
        tallies.apply([.inserted(seq: 11, device: "a", size: 5, receivedAt: 1100)])
        tallies.scanChunk(
            [
                .init(seq: 1, device: "a", size: 1, receivedAt: 100), .init(seq: 2, device: "b", size: 2, receivedAt: 200),
                .init(seq: 3, device: "a", size: 3, receivedAt: 300),
            ], through: 4)
        // Deleted: 1 (scanned, a's oldest), 6 (not scanned yet: the scan will not find it), 11 (new).
        tallies.apply([
            .deleted(seq: 1, device: "a", size: 1), .deleted(seq: 6, device: "b", size: 6), .deleted(seq: 11, device: "a", size: 5),
        ])
        #expect(tallies.isScanning)
        tallies.scanChunk(
            [.init(seq: 5, device: "c", size: 5, receivedAt: 500), .init(seq: 7, device: "b", size: 7, receivedAt: 700)],
            through: 10)
        #expect(!tallies.isScanning)
        let snapshot = tallies.snapshot() ?? [:]
        #expect(snapshot["a"]?.count == 1 && snapshot["a"]?.bytes == 3)
        #expect(snapshot["a"]?.oldest == .after(1), "a's oldest was deleted: the next one is looked up")
        #expect(snapshot["b"]?.count == 2 && snapshot["b"]?.bytes == 9 && snapshot["b"]?.oldest == .known(seq: 2, receivedAt: 200))
        #expect(snapshot["c"]?.oldest == .known(seq: 5, receivedAt: 500))
        // A lookup that raced a deletion of the device is not kept.
        let deletions = snapshot["a"]?.deletions ?? 0
        tallies.apply([.inserted(seq: 12, device: "a", size: 4, receivedAt: 1200), .deleted(seq: 3, device: "a", size: 3)])
        tallies.resolved("a", deletions: deletions, seq: 3, receivedAt: 300)
        #expect(tallies.snapshot()?["a"]?.oldest == .after(1), "still only a bound")
        tallies.resolved("a", deletions: deletions + 1, seq: 12, receivedAt: 1200)
        #expect(tallies.snapshot()?["a"]?.oldest == .known(seq: 12, receivedAt: 1200))
        #expect(tallies.snapshot()?["a"]?.count == 1)
    }

    @Test func aNewEventDuringTheScanIsNotTakenForTheOldestOfADeviceWithUnscannedEvents() {
        let tallies = DeviceTallies(lastSeq: 100, empty: false)
        tallies.apply([.inserted(seq: 101, device: "a", size: 1, receivedAt: 10_100)])
        tallies.apply([.deleted(seq: 101, device: "a", size: 1), .inserted(seq: 102, device: "a", size: 1, receivedAt: 10_200)])
        tallies.scanChunk([.init(seq: 50, device: "a", size: 1, receivedAt: 5_000)], through: 60)
        tallies.apply([.deleted(seq: 102, device: "a", size: 1)])
        tallies.scanChunk([.init(seq: 70, device: "a", size: 1, receivedAt: 7_000)], through: 100)
        #expect(tallies.snapshot()?["a"]?.count == 2)
        #expect(tallies.snapshot()?["a"]?.oldest == .known(seq: 50, receivedAt: 5_000))
    }
}

/// A small deterministic generator (SplitMix64), so a failing sequence can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
