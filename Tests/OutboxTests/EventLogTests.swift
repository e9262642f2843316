import Foundation
import Testing

@testable import Outbox
import SQLite

/// Issue 17: new events are made durable in the event log (`<path>-events`) while the database's
/// transaction stays open; a crash puts them back from the log.
@Suite struct EventLogTests {
    /// The event log is off by default (`store.eventLogBytes` 0); these turn it on.
    /// The idle commit is far away, so what a test sees in the database is what it asks for.
    private func withLog(_ configuration: inout OutboxConfiguration) {
        configuration.eventLogBytes = 1 << 20
        configuration.eventLogIdleMs = 600_000
    }

    private static func committedSeqs(_ path: String) throws -> [Int64] {
        let db = try SQLiteConnection.open(path: path, readOnly: true)
        let stmt = try db.statement("SELECT seq FROM events ORDER BY seq")
        var seqs: [Int64] = []
        while try stmt.step() { seqs.append(stmt.int64(0)) }
        stmt.reset()
        return seqs
    }

    @Test func acknowledgedEventsOnlyInTheLogSurviveACrashWithTheirSequenceNumbers() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(withLog), logger: testLogger)
        var outcomes: [AppendOutcome] = []
        for index in 1...40 {
            outcomes += await outbox.append([record("d\(index % 4)", "e\(index)", size: 200)])
        }
        #expect(outcomes == (1...40).map { .stored(seq: Int64($0)) })
        // Forwarded ones leave at once for readers; in the database nothing is committed yet.
        outbox.remove(Array(1...10))
        _ = await outbox.append([record("d9", "e41")])
        #expect(try await outbox.pending(after: 0, limit: 100).map(\.seq) == Array(11...41))
        #expect(try Self.committedSeqs(store.path).isEmpty, "the events are in the log, the transaction is open")
        let stats = try await outbox.stats()
        #expect(stats.depth == 31)
        #expect(stats.devices.reduce(0) { $0 + $1.depth } == 31)

        let image = try TemporaryStore()
        try OutboxTests.crashImage(of: store, to: image)
        let recovered = try Outbox.open(configuration: image.configuration(withLog), logger: testLogger)
        // Every acked event is back with its sequence number (the removals were not committed:
        // those go upstream again, with their eventId).
        #expect(try await recovered.pending(after: 0, limit: 100).map(\.seq) == Array(1...41))
        #expect(try Self.committedSeqs(image.path) == Array(1...41), "put into the database at the start")
        #expect(await recovered.append([record("d1", "e1"), record("d9", "e41")]) == [.duplicate, .duplicate])
        #expect(await recovered.append([record("d1", "e42")]) == [.stored(seq: 42)])
        #expect(recovered.depth.count == 42)
        await recovered.close()
        await outbox.close()
        #expect(try Self.committedSeqs(store.path) == Array(11...41), "the close commits")
    }

    @Test func aTornLastRecordEndsTheLogAndTheEventsBeforeItAreKept() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(withLog), logger: testLogger)
        for index in 1...5 { _ = await outbox.append([record("d", "e\(index)", size: 300)]) }
        let image = try TemporaryStore()
        try OutboxTests.crashImage(of: store, to: image)
        await outbox.close()
        // A power cut in the middle of the last group's write: its bytes are half there. (That
        // group was never acked: its fdatasync had not returned.)
        let log = try EventLog(path: image.path + "-events", capacity: 1024 * 1024)
        let entries = try log.recover()
        #expect(entries.map(\.seq) == [1, 2, 3, 4, 5])
        log.close()
        let lastRecord = EventLog.dataStart + EventLog.size(of: Array(entries.dropLast()))
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: image.path + "-events"))
        try handle.seek(toOffset: UInt64(lastRecord + 40))
        try handle.write(contentsOf: Data(repeating: 0x5A, count: 16))
        try handle.close()
        let recovered = try Outbox.open(configuration: image.configuration(withLog), logger: testLogger)
        #expect(try await recovered.pending(after: 0, limit: 10).map(\.eventID) == ["e1", "e2", "e3", "e4"])
        await recovered.close()
    }

    @Test func theTransactionCommitsAfterEventLogSeconds() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration { withLog(&$0); $0.eventLogSeconds = 1 }, logger: testLogger)
        _ = await outbox.append([record("d", "e1")])
        var committed = try Self.committedSeqs(store.path)
        for _ in 0..<200 where committed.isEmpty {
            try await Task.sleep(for: .milliseconds(20))
            committed = try Self.committedSeqs(store.path)
        }
        #expect(committed == [1], "committed by the writer's timer, with nothing else happening")
        await outbox.close()
    }

    @Test func theTransactionCommitsWhenTheWriterIsIdle() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(
            configuration: store.configuration {
                withLog(&$0)
                $0.eventLogIdleMs = 200
            }, logger: testLogger)
        _ = await outbox.append([record("d", "e1"), record("d", "e2")])
        var committed = try Self.committedSeqs(store.path)
        for _ in 0..<200 where committed.count < 2 {
            try await Task.sleep(for: .milliseconds(20))
            committed = try Self.committedSeqs(store.path)
        }
        #expect(committed == [1, 2], "committed after a pause, long before eventLogSeconds")
        await outbox.close()
    }

    /// The forwarder reads a few events at a time past its cursor (``UncommittedView/window(after:limit:)``):
    /// paging through committed rows the open transaction deleted, its own events and its own
    /// deletions gives every remaining event once, in order.
    @Test func pagingInSmallStepsPastDeletionsGivesEveryRemainingEventOnceInOrder() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(withLog), logger: testLogger)
        for index in 1...20 { _ = await outbox.append([record("d\(index % 3)", "e\(index)")]) }
        await outbox.waitForQueuedWrites()
        #expect(try Self.committedSeqs(store.path).count == 20, "committed before the next transaction")
        for index in 21...40 { _ = await outbox.append([record("d\(index % 3)", "e\(index)")]) }
        outbox.remove([2, 3, 5, 19, 22, 23, 40])
        _ = await outbox.append([record("d9", "e41")])
        #expect(try Self.committedSeqs(store.path).count == 20, "the deletions and new events are in the open transaction")
        let expected = (1...41).map { Int64($0) }.filter { ![2, 3, 5, 19, 22, 23, 40].contains($0) }
        for step in [1, 2, 3, 7, 100] {
            var cursor: Int64 = 0
            var seen: [Int64] = []
            while true {
                let page = try await outbox.pending(after: cursor, limit: step)
                guard let last = page.last else { break }
                #expect(page.count <= step)
                seen += page.map(\.seq)
                cursor = last.seq
            }
            #expect(seen == expected, "pages of \(step)")
        }
        await outbox.close()
    }

    /// The window a reader takes: at most `limit` events past the cursor, and only the deletions past it.
    @Test func theWindowHoldsOnlyWhatLiesPastTheCursor() {
        let view = UncommittedView()
        let events = (10...30).map { StoredEvent(seq: Int64($0), device: "d", eventID: "e\($0)", key: "d", receivedAt: 0, payload: [], topic: nil) }
        view.publish(inserted: events, deleted: [3, 8, 1, 12, 15], count: 16, bytes: 0)
        let window = view.window(after: 9, limit: 4)
        #expect(window.inserted.map(\.seq) == [10, 11, 13, 14])
        #expect(window.hidden.isEmpty, "12 and 15 were the transaction's own events")
        let early = view.window(after: 2, limit: 2)
        #expect(early.hidden == [3, 8])
        #expect(early.inserted.map(\.seq) == [10, 11])
        #expect(view.window(after: 30, limit: 5).inserted.isEmpty)
        #expect(view.window(after: 30, limit: 5).depth?.count == 16)
        view.clear()
        #expect(view.window(after: 0, limit: 5).isEmpty)
    }

    /// Past the oldest event the open transaction holds, the next events come from memory; before
    /// it (committed rows may lie there) the reader must read the database.
    @Test func pendingFromMemoryOnlyWhereNoCommittedRowCanLie() {
        let view = UncommittedView()
        #expect(view.pendingInMemory(after: 0, limit: 5) == nil, "no open transaction")
        let events = (10...30).map { StoredEvent(seq: Int64($0), device: "d", eventID: "e\($0)", key: "d", receivedAt: 0, payload: [], topic: nil) }
        view.publish(inserted: events, deleted: [3, 8, 12], count: 20, bytes: 0)
        #expect(view.pendingInMemory(after: 8, limit: 5) == nil, "committed rows up to 9 may be unread")
        #expect(view.pendingInMemory(after: 9, limit: 3)?.map(\.seq) == [10, 11, 13])
        #expect(view.pendingInMemory(after: 13, limit: 2)?.map(\.seq) == [14, 15])
        #expect(view.pendingInMemory(after: 30, limit: 5)?.isEmpty == true)
        // The oldest of the transaction's events forwarded and removed: still nothing committed past 9.
        view.publish(inserted: [], deleted: [10, 11], count: 18, bytes: 0)
        #expect(view.pendingInMemory(after: 12, limit: 2)?.map(\.seq) == [13, 14])
        #expect(view.pendingInMemory(after: 11, limit: 1) == nil, "before the oldest it holds now: read")
        view.clear()
        #expect(view.pendingInMemory(after: 30, limit: 5) == nil)
    }

    /// A full disk while the log's events wait to go into the database: the space after them goes
    /// back, and they are all still read.
    @Test func trimmingTheUnusedSpaceKeepsTheRecords() throws {
        let store = try TemporaryStore()
        let log = try EventLog(path: store.path + "-events", capacity: 1 << 20)
        let entries = (1...30).map { (seq: Int64($0), record: record("d", "e\($0)", size: 300)) }
        _ = try log.append(entries)
        #expect(try log.trimUnused())
        let size = try FileManager.default.attributesOfItem(atPath: store.path + "-events")[.size] as? Int64 ?? 0
        #expect(size == EventLog.dataStart + log.capacity && size < 32 * 1024, "\(size)")
        #expect(try log.recover().map(\.seq) == entries.map(\.seq))
        #expect(!log.fits(4096), "nothing more fits until the log is emptied")
        #expect(try !log.trimUnused(), "nothing more to give back")
    }

    @Test func aFullLogCommitsTheTransactionAndEveryEventIsKept() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration { withLog(&$0); $0.eventLogBytes = 65536 }, logger: testLogger)
        // About 400 bytes a record: 500 events fill the 64 KiB log three times over.
        for index in 1...500 {
            #expect(await outbox.append([record("d\(index % 7)", "e\(index)", size: 300)]) == [.stored(seq: Int64(index))])
        }
        #expect(try Self.committedSeqs(store.path).count >= 300, "each full log committed the transaction")
        #expect(try await outbox.pending(after: 0, limit: 1000).count == 500)
        let image = try TemporaryStore()
        try OutboxTests.crashImage(of: store, to: image)
        let recovered = try Outbox.open(configuration: image.configuration { withLog(&$0); $0.eventLogBytes = 65536 }, logger: testLogger)
        #expect(try await recovered.pending(after: 0, limit: 1000).map(\.seq) == (1...500).map { Int64($0) })
        await recovered.close()
        await outbox.close()
    }

    /// A start replays the log before the first group; it used to do that before the disk
    /// reserve was set aside, take the file system for full, give the log's space back ("file
    /// system full" in the journal at every start) and write the whole log again with the first
    /// group.
    @Test func aStartOnAFileSystemWithRoomKeepsTheLogsSpace() async throws {
        let store = try TemporaryStore()
        let first = try Outbox.open(configuration: store.configuration(withLog), logger: testLogger)
        _ = await first.append([record("d", "e1")])
        await first.close()
        let size = { (try? FileManager.default.attributesOfItem(atPath: store.path + "-events"))?[.size] as? Int64 ?? 0 }
        let before = size()
        #expect(before > 1 << 20)
        let second = try Outbox.open(configuration: store.configuration(withLog), logger: testLogger)
        #expect(size() == before, "the log was given back at the start")
        #expect(await second.append([record("d", "e2")]) == [.stored(seq: 2)])
        await second.close()
    }

    @Test func turnedOffTheLogIsEmptiedIntoTheDatabaseAndRemoved() async throws {
        let store = try TemporaryStore()
        let outbox = try Outbox.open(configuration: store.configuration(withLog), logger: testLogger)
        _ = await outbox.append([record("d", "e1"), record("d", "e2")])
        let image = try TemporaryStore()
        try OutboxTests.crashImage(of: store, to: image)
        await outbox.close()
        let plain = try Outbox.open(configuration: image.configuration { $0.eventLogBytes = 0 }, logger: testLogger)
        #expect(try await plain.pending(after: 0, limit: 10).map(\.eventID) == ["e1", "e2"])
        #expect(!FileManager.default.fileExists(atPath: image.path + "-events"))
        // Without the log every group commits on its own.
        _ = await plain.append([record("d", "e3")])
        #expect(try Self.committedSeqs(image.path) == [1, 2, 3])
        await plain.close()
    }
}
