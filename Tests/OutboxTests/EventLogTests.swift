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
