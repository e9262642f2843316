import Foundation
import Logging
import Testing

@testable import Outbox
import SQLite

/// Each test gets its own directory with a real SQLite file.
struct TemporaryStore: ~Copyable {
    let directory: URL
    var path: String { directory.appendingPathComponent("outbox.db").path }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    deinit {
        // A store's reserve file may be set aside again while the directory is being removed (a writer that
        // has not quite finished): try again so nothing outlives the test (scripts/test checks).
        for _ in 0..<10 {
            try? FileManager.default.removeItem(at: directory)
            guard FileManager.default.fileExists(atPath: directory.path) else { return }
            usleep(20_000)
        }
    }

    func configuration(_ change: (inout OutboxConfiguration) -> Void = { _ in }) -> OutboxConfiguration {
        var configuration = OutboxConfiguration(path: path)
        configuration.commitIntervalMs = 0
        // Build and CI machines often run without NTP; the tests age events explicitly.
        configuration.requireSyncedClock = false
        change(&configuration)
        return configuration
    }
}

func record(_ device: String, _ eventID: String, size: Int = 100, at receivedAt: Int64? = nil) -> OutboxRecord {
    OutboxRecord(
        device: device, eventID: eventID, key: device,
        receivedAt: receivedAt ?? Int64(Date().timeIntervalSince1970 * 1000),
        payload: Array(repeating: UInt8(ascii: "x"), count: size))
}

let testLogger = Logger(label: "outbox-test")

@Suite struct OutboxTests {
    @Test func appendedEventsAreReadBackInOrderAndSurviveReopen() async throws {
        let store = try TemporaryStore()
        do {
            let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
            let outcomes = await outbox.append((0..<10).map { record("d\($0 % 3)", "e\($0)") })
            #expect(outcomes == (1...10).map { .stored(seq: Int64($0)) })
            await outbox.close()
        }
        let reopened = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        let pending = try await reopened.pending(after: 0, limit: 100)
        #expect(pending.map(\.eventID) == (0..<10).map { "e\($0)" })
        #expect(reopened.depth.count == 10)
        await reopened.close()
    }

    @Test func duplicateIsRecognisedWithinBatchAcrossBatchesAndAfterRemoval() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        let first = await outbox.append([record("d", "e1"), record("d", "e1"), record("other", "e1")])
        #expect(first == [.stored(seq: 1), .duplicate, .stored(seq: 2)])
        outbox.remove([1, 2])
        // The removal waits in memory (store.removalDelayMs); the repeat still counts as a duplicate.
        #expect(await outbox.append([record("d", "e1")]) == [.duplicate])
        await outbox.waitForQueuedWrites()
        #expect(try await outbox.pending(after: 0, limit: 10).isEmpty)
        await outbox.close()
    }

    @Test func removalsAloneAreCommittedWithoutAnAppendAndCloseFlushesThem() async throws {
        let store = try TemporaryStore()
        do {
            let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
            _ = await outbox.append((1...4).map { record("d", "e\($0)") })
            // Alone, a removal waits a little for company, then commits on its own.
            outbox.remove([1, 2])
            for _ in 0..<500 where outbox.depth.count != 2 { try await Task.sleep(for: .milliseconds(10)) }
            #expect(outbox.depth.count == 2)
            // One queued right before close is committed by the close, not dropped.
            outbox.remove([3])
            await outbox.close()
        }
        let reopened = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        #expect(try await reopened.pending(after: 0, limit: 10).map(\.eventID) == ["e4"])
        await reopened.close()
    }

    /// Copies the database and its WAL while the writer is idle: what a power cut would leave.
    static func crashImage(of store: borrowing TemporaryStore, to image: borrowing TemporaryStore) throws {
        // The database, its WAL and the event log, as a power cut leaves them (what is not synced is
        // not in them: the open transaction's pages are in the writer's memory).
        for suffix in ["", "-wal", "-events"] where FileManager.default.fileExists(atPath: store.path + suffix) {
            try FileManager.default.copyItem(atPath: store.path + suffix, toPath: image.path + suffix)
        }
    }

    @Test func removalsWaitingInMemoryAreLostInACrashAsResendsNeverAsLosses() async throws {
        let store = try TemporaryStore()
        // Without the event log: with it, removals go into its open transaction at once (and a
        // crash loses them the same way: EventLogTests).
        let outbox = try Outbox.open(
            configuration: store.configuration {
                $0.removalDelayMs = 60_000
                $0.eventLogBytes = 0
            }, logger: testLogger)
        _ = await outbox.append((1...10).map { record("d\($0 % 3)", "e\($0)") })
        // Forwarded and acknowledged upstream; the removal waits for company.
        outbox.remove(Array(1...6))
        // A commit happens meanwhile (a new event): it does not carry the removal.
        #expect(await outbox.append([record("d0", "e11")]) == [.stored(seq: 11)])
        #expect(outbox.depth.count == 11)
        let image = try TemporaryStore()
        try Self.crashImage(of: store, to: image)
        // After the crash every event is still there (the forwarded ones go again) and every id is
        // still recognised.
        let recovered = try Outbox.open(configuration: image.configuration { $0.eventLogBytes = 0 }, logger: testLogger)
        #expect(try await recovered.pending(after: 0, limit: 100).map(\.seq) == Array(1...11))
        #expect(recovered.depth.count == 11)
        #expect(try await recovered.stats().depth == 11)
        #expect(await recovered.append([record("d1", "e1"), record("d0", "e11")]) == [.duplicate, .duplicate])
        await recovered.close()
        // Without the crash the removal is committed by the close.
        await outbox.close()
        let reopened = try Outbox.open(configuration: store.configuration { $0.eventLogBytes = 0 }, logger: testLogger)
        #expect(try await reopened.pending(after: 0, limit: 100).map(\.seq) == Array(7...11))
        #expect(reopened.depth.count == 5)
        await reopened.close()
    }

    @Test func waitForQueuedWritesCommitsWaitingRemovals() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(
            configuration: store.configuration { $0.removalDelayMs = 60_000 }, logger: testLogger)
        _ = await outbox.append((1...4).map { record("d", "e\($0)") })
        outbox.remove([1, 2])
        await outbox.waitForQueuedWrites()
        #expect(outbox.depth.count == 2)
        #expect(try await outbox.pending(after: 0, limit: 10).map(\.seq) == [3, 4])
        await outbox.close()
    }

    @Test func depthAndBytesAreRightAfterACrashWhenTheTotalsRowLagsBehind() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration { $0.removalDelayMs = 0 }, logger: testLogger)
        // 1,500 appends (the totals row is written after 1,000), a removal (it writes the row), then more appends.
        for round in 0..<15 {
            _ = await outbox.append((0..<100).map { record("d\($0 % 5)", "a\(round)-\($0)", size: 50) })
        }
        outbox.remove(Array(1...300))
        await outbox.waitForQueuedWrites()
        _ = await outbox.append((0..<7).map { record("d9", "b\($0)", size: 50) })
        let live = outbox.depth
        #expect(live.count == 1207)
        #expect(try await outbox.stats().depth == 1207)
        #expect(try await outbox.stats().bytes == live.bytes)
        let image = try TemporaryStore()
        try Self.crashImage(of: store, to: image)
        await outbox.close()
        let recovered = try Outbox.open(configuration: image.configuration(), logger: testLogger)
        #expect(recovered.depth.count == live.count && recovered.depth.bytes == live.bytes && recovered.depth.lastSeq == 1507)
        let stats = try await recovered.stats()
        #expect(stats.depth == 1207 && stats.bytes == live.bytes)
        #expect(stats.devices.reduce(0) { $0 + $1.depth } == 1207)
        // Sequence numbers go on from the last one.
        #expect(await recovered.append([record("d9", "c1", size: 50)]) == [.stored(seq: 1508)])
        await recovered.close()
    }

    @Test func statsShowWhatTheStoreWroteAndHowOftenItCommitted() async throws {
        let store = try TemporaryStore()
        do {
            let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
            for round in 0..<5 {
                _ = await outbox.append([record("d", "e\(round)", size: 256)])
            }
            await outbox.close()
        }
        let reopened = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        let wear = try #require(try await reopened.stats().wear)
        // Five commits of at least one page each (4,096 + 24 bytes), recorded at close.
        #expect(wear.commits >= 5)
        #expect(wear.writtenBytes >= 5 * 4120)
        await reopened.close()
    }

    @Test func dedupMemoryOfForwardedEventsMakesRoomWhenTheFileIsFull() async throws {
        let store = try TemporaryStore()
        // 64 pages: a few thousand dedup entries fill it long before their 24 h are up.
        let outbox = try Outbox.open(
            configuration: store.configuration {
                $0.maxBytes = 262_144
                $0.maxFileBytes = 262_144
                $0.whenFull = .rejectNew
            }, logger: testLogger)
        // Forwarded as fast as they come (depth stays near 0), 20,000 events in all.
        var refused = 0
        for round in 0..<200 {
            let outcomes = await outbox.append((0..<100).map { record("d\($0 % 4)", "r\(round)-\($0)", size: 40) })
            refused += outcomes.filter { $0 == .rejectedStoreFull }.count
            outbox.remove(outcomes.compactMap { if case .stored(let seq) = $0 { seq } else { nil } })
        }
        #expect(refused == 0, "an empty outbox must not refuse events because of its dedup memory")
        // The newest ids are still recognised.
        #expect(await outbox.append([record("d0", "r199-0", size: 40)]) == [.duplicate])
        await outbox.close()
    }

    @Test func rejectCountsAloneAreWrittenBeforeAnyEventIsStored() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        // Only invalid input so far: nothing else will ever commit, yet the counts must land.
        outbox.countRejects(["invalid json": 3, "invalid device id": 1])
        var rejects: [String: Int64] = [:]
        for _ in 0..<500 where rejects["invalid json"] != 3 {
            try await Task.sleep(for: .milliseconds(10))
            rejects = try await outbox.stats().rejects
        }
        #expect(rejects == ["invalid json": 3, "invalid device id": 1])
        await outbox.close()
    }

    @Test func dedupMemoryExpiresAfterRetention() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(
            configuration: store.configuration { $0.dedupRetentionSeconds = 60 }, logger: testLogger)
        let old = Int64(Date().timeIntervalSince1970 * 1000) - 120_000
        #expect(await outbox.append([record("d", "e1", at: old)]) == [.stored(seq: 1)])
        outbox.remove([1])
        await outbox.close()
        // Reopening runs maintenance at start: the two-minute-old dedup entry is forgotten.
        let reopened = try Outbox.open(
            configuration: store.configuration { $0.dedupRetentionSeconds = 60 }, logger: testLogger)
        let runTask = Task { try await reopened.run() }
        var outcome: [AppendOutcome] = []
        for _ in 0..<100 {
            outcome = await reopened.append([record("d", "e1")])
            if outcome != [.duplicate] { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(outcome == [.stored(seq: 2)])
        runTask.cancel()
        _ = try? await runTask.value
        await reopened.close()
    }

    @Test func rejectNewPolicyRefusesEventsOverTheCapAndCountsThem() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(
            configuration: store.configuration {
                $0.maxBytes = 1000
                $0.whenFull = .rejectNew
            }, logger: testLogger)
        let outcomes = await outbox.append((0..<10).map { record("d", "e\($0)", size: 200) })
        let stored = outcomes.filter { if case .stored = $0 { true } else { false } }.count
        #expect(stored == 3)  // 3 x (200 + 1 + 2 + 1 + 64) = 804 <= 1000 < 4 x 268
        #expect(outcomes.suffix(7).allSatisfy { $0 == .rejectedStoreFull })
        // A refused event was not remembered as seen: it can be stored once there is room.
        outbox.remove([1])
        #expect(await outbox.append([record("d", "e9", size: 200)]) == [.stored(seq: 4)])
        let stats = try await outbox.stats()
        #expect(stats.rejects["store full"] == 7)
        await outbox.close()
    }

    @Test func dropOldestPolicyEvictsOldestAndCountsCapacityDrops() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(
            configuration: store.configuration {
                $0.maxBytes = 1000
                $0.whenFull = .dropOldest
            }, logger: testLogger)
        var outcomes: [AppendOutcome] = []
        for index in 0..<10 {
            outcomes += await outbox.append([record("d", "e\(index)", size: 200)])
        }
        #expect(outcomes.allSatisfy { if case .stored = $0 { true } else { false } })
        let pending = try await outbox.pending(after: 0, limit: 100)
        #expect(pending.map(\.eventID) == ["e7", "e8", "e9"])
        let stats = try await outbox.stats()
        #expect(stats.drops["capacity"] == 7)
        #expect(stats.depth == 3)
        #expect(stats.bytes <= 1000)
        await outbox.close()
    }

    /// A store far over a lowered cap shrinks by `maxEvictionBytes` a group and takes new events
    /// meanwhile: one group evicting the whole excess held the writer for seconds (a 1,000,000-event
    /// backlog over the default cap: 12 s) and, in the event log's transaction, kept every page it
    /// touched in memory (83 MB).
    @Test func aStoreFarOverALoweredCapShrinksByTheEvictionBudgetAGroup() async throws {
        let store = try TemporaryStore()
        do {
            let outbox = try Outbox.open(configuration: store.configuration { $0.maxBytes = 2_000_000 }, logger: testLogger)
            for chunk in 0..<10 {
                _ = await outbox.append((0..<100).map { record("d\($0 % 4)", "old-\(chunk * 100 + $0)", size: 936) })
            }
            #expect(try await outbox.stats().depth == 1_000)
            await outbox.close()
        }
        let outbox = try Outbox.open(
            configuration: store.configuration {
                $0.maxBytes = 200_000
                $0.whenFull = .dropOldest
                $0.maxEvictionBytes = 65_536
            }, logger: testLogger)
        let before = try await outbox.stats().bytes
        #expect(before > 1_000_000)
        func stored(_ outcomes: [AppendOutcome]) -> Bool { outcomes.allSatisfy { if case .stored = $0 { true } else { false } } }

        // The first new event is stored over the cap; its group evicts the budget's worth (and the event that crosses it).
        let first = record("new", "n0", size: 936)
        #expect(stored(await outbox.append([first])))
        var stats = try await outbox.stats()
        let evicted = before + first.accountedSize - stats.bytes
        #expect(evicted >= 65_536 && evicted < 65_536 + first.accountedSize, "evicted \(evicted) bytes")
        #expect(stats.bytes > 200_000)
        #expect(stats.drops["capacity"] == Int64(stats.depth < 1_000 ? 1_001 - stats.depth : 0))

        // Each later group shrinks the store the same way until it is under the cap.
        var groups = 1
        while stats.bytes > 200_000, groups < 40 {
            #expect(stored(await outbox.append([record("new", "n\(groups)", size: 936)])))
            groups += 1
            stats = try await outbox.stats()
        }
        #expect(stats.bytes <= 200_000)
        #expect(groups > 10, "about (\(before) - 200,000) / 65,536 groups, not one: \(groups)")
        // Under the cap, an event evicts only what it needs.
        let depth = stats.depth
        #expect(stored(await outbox.append([record("new", "n\(groups)", size: 936)])))
        stats = try await outbox.stats()
        #expect(stats.bytes <= 200_000 && stats.depth >= depth - 1 && stats.depth <= depth + 1)
        let pending = try await outbox.pending(after: 0, limit: 1_000).map(\.eventID)
        #expect(pending.suffix(groups + 1) == (0...groups).map { "n\($0)" })
        #expect(!pending.contains("old-0"), "the oldest went first")
        await outbox.close()
    }

    /// Issue 12: under dropOldest one noisy device must not evict every other device's
    /// undelivered events; the device holding the most bytes loses its own oldest first.
    @Test func dropOldestEvictsTheNoisiestDevicesOldestEventsFirst() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(
            configuration: store.configuration {
                $0.maxBytes = 4000
                $0.whenFull = .dropOldest
            }, logger: testLogger)
        for device in ["quiet-a", "quiet-b"] {
            for index in 0..<2 { _ = await outbox.append([record(device, "\(device)-\(index)", size: 200)]) }
        }
        for index in 0..<40 {
            let outcomes = await outbox.append([record("noisy", "n\(index)", size: 200)])
            #expect(outcomes.allSatisfy { if case .stored = $0 { true } else { false } })
        }
        var pending = try await outbox.pending(after: 0, limit: 100).map(\.eventID)
        #expect(Array(pending.prefix(4)) == ["quiet-a-0", "quiet-a-1", "quiet-b-0", "quiet-b-1"], "\(pending)")
        #expect(pending.last == "n39" && pending.dropFirst(4).allSatisfy { $0.hasPrefix("n") }, "\(pending)")
        let noisyKept = pending.count - 4
        var stats = try await outbox.stats()
        #expect(stats.drops["capacity"] == Int64(40 - noisyKept))
        #expect(stats.bytes <= 4000)

        // Once the quiet ones hold more than the noisy one, they lose their oldest in turn:
        // a big burst from quiet-a evicts noisy's events, then quiet-a's own oldest.
        for index in 2..<30 { _ = await outbox.append([record("quiet-a", "quiet-a-\(index)", size: 200)]) }
        pending = try await outbox.pending(after: 0, limit: 200).map(\.eventID)
        #expect(pending.contains("quiet-b-0") && pending.contains("quiet-b-1"), "the smallest device keeps its events: \(pending)")
        #expect(!pending.contains("quiet-a-0"), "quiet-a, now the heaviest, lost its oldest: \(pending)")
        #expect(pending.last == "quiet-a-29")
        stats = try await outbox.stats()
        #expect(stats.bytes <= 4000)

        // Removals (after PUBACK) keep the per-device accounting right: after the quiet-b events are
        // forwarded, another noisy burst still evicts by weight, and nothing breaks.
        let seqs = try await outbox.pending(after: 0, limit: 200).filter { $0.device == "quiet-b" }.map(\.seq)
        outbox.remove(seqs)
        for index in 40..<60 { _ = await outbox.append([record("noisy", "n\(index)", size: 200)]) }
        stats = try await outbox.stats()
        #expect(stats.bytes <= 4000)
        await outbox.close()
    }

    @Test func expiredEventsAreDroppedByMaintenance() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration { $0.maxAgeSeconds = 60 }, logger: testLogger)
        let old = Int64(Date().timeIntervalSince1970 * 1000) - 120_000
        _ = await outbox.append([record("d", "old1", at: old), record("d", "old2", at: old), record("d", "new")])
        let runTask = Task { try await outbox.run() }
        var stats = try await outbox.stats()
        for _ in 0..<100 where stats.depth != 1 {
            try await Task.sleep(for: .milliseconds(20))
            stats = try await outbox.stats()
        }
        #expect(stats.depth == 1)
        #expect(stats.drops["expired"] == 2)
        #expect(try await outbox.pending(after: 0, limit: 10).map(\.eventID) == ["new"])
        runTask.cancel()
        _ = try? await runTask.value
        await outbox.close()
    }

    @Test func corruptDatabaseIsQuarantinedAndAFreshOneCreated() async throws {
        let store = try TemporaryStore()
        try Data(repeating: 0x42, count: 8192).write(to: URL(fileURLWithPath: store.path))
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        #expect(await outbox.append([record("d", "e")]) == [.stored(seq: 1)])
        await outbox.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: store.directory.path)
        #expect(names.contains { $0.hasPrefix("outbox.db.corrupt-") })
    }

    @Test func fileCapMakesAppendsFailAsStoreFullWhileRemovalsGoOn() async throws {
        let store = try TemporaryStore()
        // The byte cap is far away, but the file may not exceed 64 pages: SQLite reports SQLITE_FULL,
        // as it would on a full disk.
        let tight = try Outbox.open(
            configuration: store.configuration {
                $0.maxBytes = 1 << 30
                $0.maxFileBytes = 100_000
            }, logger: testLogger)
        var sawFull = false
        var storedSeqs: [Int64] = []
        for batch in 0..<100 where !sawFull {
            let outcomes = await tight.append((0..<10).map { record("d", "b\(batch)-\($0)", size: 1500) })
            for outcome in outcomes {
                if case .stored(let seq) = outcome { storedSeqs.append(seq) }
                if outcome == .rejectedStoreFull { sawFull = true }
            }
        }
        #expect(sawFull)
        // Nothing stored is lost, and removing forwarded events frees room for new ones.
        #expect(try await tight.pending(after: 0, limit: 10_000).count == storedSeqs.count)
        tight.remove(storedSeqs)
        var recovered = false
        for attempt in 0..<50 where !recovered {
            let outcome = await tight.append([record("d", "after-\(attempt)", size: 1500)])
            if case .stored = outcome.first { recovered = true }
        }
        #expect(recovered)
        await tight.close()
    }

    @Test func committedSequencesAnnounceNewEvents() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        var iterator = outbox.committedSequences.makeAsyncIterator()
        _ = await outbox.append([record("d", "e1"), record("d", "e2")])
        #expect(await iterator.next() == 2)
        await outbox.close()
    }

    @Test func inspectorReadsStatsReadOnlyWhileOpen() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        _ = await outbox.append([record("a", "1"), record("a", "2"), record("b", "1")])
        outbox.countRejects(["invalid json": 2])
        _ = await outbox.append([record("c", "1")])
        // A reader beside the daemon (the CLI) finds the events in the event log too, before the
        // daemon's transaction commits.
        let inspector = try OutboxInspector(path: store.path)
        var stats = try await inspector.stats()
        #expect(stats.depth == 4)
        #expect(stats.devices.first?.deviceId == "a")
        #expect(stats.devices.first?.depth == 2)
        #expect(try await inspector.peek(device: "b", limit: 5).map(\.eventID) == ["1"])
        // Counters it reads as committed.
        await outbox.waitForQueuedWrites()
        stats = try await inspector.stats()
        #expect(stats.rejects["invalid json"] == 2)
        #expect(stats.depth == 4)
        await outbox.close()
    }

    @Test func concurrentAppendsAllCommitWithUniqueSequenceNumbers() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration { $0.commitIntervalMs = 5 }, logger: testLogger)
        let results = await withTaskGroup(of: [AppendOutcome].self) { group in
            for task in 0..<50 {
                group.addTask { await outbox.append([record("d\(task)", "e")]) }
            }
            var all: [AppendOutcome] = []
            for await outcome in group { all += outcome }
            return all
        }
        let seqs = results.compactMap { if case .stored(let seq) = $0 { seq } else { nil } }
        #expect(Set(seqs) == Set(1...50))
        await outbox.close()
    }
}

@Suite struct DedupLimitTests {
    @Test func dedupMemoryKeepsOnlyTheNewestEntries() async throws {
        let store = try TemporaryStore()
        let configuration = store.configuration { $0.dedupMaxEntries = 5 }
        let outbox = try Outbox.open(configuration: configuration, logger: testLogger)
        _ = await outbox.append((0..<10).map { record("d", "e\($0)") })
        outbox.remove(Array(1...10))
        await outbox.close()
        // Maintenance at start trims the dedup table to the newest five ids.
        let reopened = try Outbox.open(configuration: configuration, logger: testLogger)
        let runTask = Task { try await reopened.run() }
        var oldest: [AppendOutcome] = []
        for _ in 0..<100 {
            oldest = await reopened.append([record("d", "e0")])
            if oldest != [.duplicate] { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(oldest == [.stored(seq: 11)])
        #expect(await reopened.append([record("d", "e9")]) == [.duplicate])
        runTask.cancel()
        _ = try? await runTask.value
        await reopened.close()
    }
}

@Suite struct SchemaTests {
    @Test func databaseFromANewerGatewayIsRefusedNotRewritten() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        _ = await outbox.append([record("d", "e")])
        await outbox.close()
        let db = try SQLiteConnection.open(path: store.path, readOnly: false)
        try db.execute("PRAGMA user_version = 99")
        #expect {
            _ = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        } throws: { error in
            (error as? OutboxError)?.code == .openFailed && "\(error)".contains("newer")
        }
        // The file is left as it was (not quarantined, not migrated).
        #expect(try db.scalarInt("PRAGMA user_version") == 99)
        #expect(try db.scalarInt("SELECT count(*) FROM events") == 1)
    }

    @Test func aRecordKeepsItsOwnTopicAndAnEventHasNone() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        var status = record("d", "\u{1}command c1 queued")
        status.topic = "hubs/h/commands/d/status"
        _ = await outbox.append([record("d", "e1"), status])
        let pending = try await outbox.pending(after: 0, limit: 10)
        #expect(pending.map(\.topic) == [nil, "hubs/h/commands/d/status"])
        await outbox.close()
    }

    @Test func aVersion1DatabaseIsMigratedWithItsEventsKept() async throws {
        let store = try TemporaryStore()
        // A store as the gateway before 0.15 left it: schema 1, one waiting event.
        let db = try SQLiteConnection.open(path: store.path, readOnly: false)
        try db.execute("PRAGMA journal_mode = WAL")
        try db.execute(OutboxSchema.migrations[0])
        try db.execute("PRAGMA user_version = 1")
        try db.execute("INSERT INTO events(seq, device, event_id, key, received_at, size, payload) VALUES (1, 'd', 'e1', 'd', 1, 70, x'7B7D')")
        try db.execute("UPDATE totals SET count = 1, bytes = 70, last_seq = 1")
        try db.execute("INSERT INTO seen(device, event_id, seen_at) VALUES ('d', 'e1', 1)")
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        let pending = try await outbox.pending(after: 0, limit: 10)
        #expect(pending.map(\.eventID) == ["e1"] && pending.first?.topic == nil && pending.first?.payload == Array("{}".utf8))
        #expect(await outbox.append([record("d", "e1")]) == [.duplicate])
        await outbox.close()
        #expect(try db.scalarInt("PRAGMA user_version") == OutboxSchema.currentVersion)
    }

    @Test func freshDatabaseIsAtTheCurrentSchemaVersion() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        await outbox.close()
        let db = try SQLiteConnection.open(path: store.path, readOnly: true)
        #expect(try db.scalarInt("PRAGMA user_version") == OutboxSchema.currentVersion)
    }
}

@Suite struct IntegrityCheckTests {
    @Test func damagedPagesAreFoundAtStartAfterARunThatHitCorruption() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        _ = await outbox.append((0..<200).map { record("d", "e\($0)", size: 500) })
        await outbox.close()
        // Damage a data page in the middle of the file; the header and schema stay intact.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: store.path))
        try handle.seek(toOffset: 8 * 4096)
        try handle.write(contentsOf: Data(repeating: 0x5A, count: 4096))
        try handle.close()
        #expect(FileManager.default.createFile(atPath: Outbox.checkMarkerPath(store.path), contents: nil))

        let reopened = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        #expect(reopened.depth.count == 0)
        await reopened.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: store.directory.path)
        #expect(names.contains { $0.hasPrefix("outbox.db.corrupt-") })
        #expect(!names.contains { $0.hasSuffix(".needs-check") })
    }

    @Test func intactStorePassesTheCheckAndKeepsItsEvents() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        _ = await outbox.append((0..<20).map { record("d", "e\($0)") })
        await outbox.close()
        #expect(FileManager.default.createFile(atPath: Outbox.checkMarkerPath(store.path), contents: nil))
        let reopened = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        #expect(reopened.depth.count == 20)
        await reopened.close()
        #expect(!FileManager.default.fileExists(atPath: Outbox.checkMarkerPath(store.path)))
    }
}

@Suite struct WriterHealthTests {
    @Test func idleWriterReportsNoStall() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(), logger: testLogger)
        #expect(outbox.writerStalledFor == .zero)
        _ = await outbox.append([record("d", "e")])
        // The append returned after its commit, so nothing is left waiting.
        #expect(outbox.writerStalledFor == .zero)
        await outbox.close()
    }
}

@Suite struct DedupPendingTests {
    @Test func dedupEntriesOfEventsStillWaitingAreNeverForgotten() async throws {
        let store = try TemporaryStore()
        let configuration = store.configuration {
            $0.dedupRetentionSeconds = 60
            $0.dedupMaxEntries = 1
            $0.maxAgeSeconds = 600
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let old = now - 120_000
        let outbox = try Outbox.open(configuration: configuration, logger: testLogger)
        // A sentinel older than store.maxAgeSeconds first: its expiry shows that maintenance has run.
        _ = await outbox.append([record("d", "e0", at: now - 1_000_000), record("d", "e1", at: old), record("d", "e2", at: old)])
        await outbox.close()
        // Past retention and over the count, but both events are still waiting upstream.
        let reopened = try Outbox.open(configuration: configuration, logger: testLogger)
        let runTask = Task { try await reopened.run() }
        for _ in 0..<500 where reopened.depth.count != 2 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(reopened.depth.count == 2, "maintenance expired the sentinel")
        #expect(await reopened.append([record("d", "e1"), record("d", "e2")]) == [.duplicate, .duplicate])
        runTask.cancel()
        _ = try? await runTask.value
        await reopened.close()
    }
}
