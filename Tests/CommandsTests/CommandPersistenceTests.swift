import Commands
import Foundation
import GatewayCore
import SQLite
import Testing

@Suite(.timeLimit(.minutes(1))) final class CommandPersistenceTests: Sendable {
    let store = TemporaryStore()

    func open(_ configure: (inout CommandsConfiguration) -> Void = { _ in }) async throws -> CommandQueue {
        try await store.open(configure)
    }

    /// The device's final result for a command it had accepted can be lost with a crash (libmosquitto
    /// acknowledges it to the broker before the gateway stores it; seen in scripts/faults,
    /// commands-in-flight: `delivered` for ever). After a restart such a command is sent again after
    /// the ack timeout, until the device answers anything; then it waits for the final result as before.
    @Test func aCommandAcceptedBeforeARestartIsAskedForAgainUntilTheDeviceAnswers() async throws {
        var queue = try await open { $0.ackTimeoutSeconds = 30 }
        try await Bed.queue(queue, "c1")
        try await Bed.queue(queue, "c2")
        #expect(try await Bed.sendDue(queue, at: Bed.t0) == ["dev-a/c1"])
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "accepted"), nowMs: Bed.t0 + 1)
        #expect(await queue.due(nowMs: Bed.t0 + 10_000_000, isOnline: Bed.online).isEmpty, "accepted: not sent again while running")
        await queue.close()

        queue = try await open { $0.ackTimeoutSeconds = 30 }
        #expect(await queue.due(nowMs: Bed.t0 + 29_999, isOnline: Bed.online).isEmpty)
        #expect(await queue.nextWake(nowMs: Bed.t0 + 2, isOnline: Bed.online) == Bed.t0 + 30_000)
        let again = await queue.due(nowMs: Bed.t0 + 30_000, isOnline: Bed.online)
        #expect(Bed.ids(again) == ["dev-a/c1"] && again.first?.isResend == true, "c1 again; c2 still waits for its place")
        let sent = try await queue.markSent(again.map(\.record.key), nowMs: Bed.t0 + 30_000)
        #expect(sent.first?.attempts == 2 && sent.first?.status == .delivered, "sent again, still delivered upstream")
        #expect(Bed.ids(await queue.due(nowMs: Bed.t0 + 60_000, isOnline: Bed.online)) == ["dev-a/c1"], "no answer yet: again")

        // The device answers (here: accepted again): no more re-sends; the final result finishes it.
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "accepted"), nowMs: Bed.t0 + 60_001)
        #expect(await queue.due(nowMs: Bed.t0 + 10_000_000, isOnline: Bed.online).isEmpty)
        #expect(Bed.status(try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "succeeded"), nowMs: Bed.t0 + 70_000)) == .succeeded)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 70_001) == ["dev-a/c2"])
        await queue.close()
    }

    @Test func everythingSurvivesCloseAndReopenIncludingWhatIsNotReportedYet() async throws {
        var queue = try await open()
        try await Bed.queue(queue, "c1", #","params":{"n":1},"ttlSeconds":600"#)
        try await Bed.queue(queue, "c2")
        try await Bed.queue(queue, "c3")
        try await Bed.queue(queue, "d1", device: Bed.deviceB)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 1) == ["dev-a/c1", "dev-b/d1"])
        #expect(Bed.status(try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "accepted"), nowMs: Bed.t0 + 2)) == .delivered)
        #expect(Bed.status(try await queue.result(device: Bed.deviceB, payload: Bed.resultPayload("d1", "succeeded", #","result":{"led":true}"#), nowMs: Bed.t0 + 3)) == .succeeded)
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c1", status: .queued) == false, "delivered is still to report")
        await queue.close()

        queue = try await open()
        #expect(await queue.pending() == [Bed.deviceA: PendingCommands(waiting: 2, delivered: 1)])
        let c1 = try #require(try await queue.record(device: Bed.deviceA, commandID: "c1"))
        #expect(c1.status == .delivered)
        #expect(c1.params == Array(#"{"n":1}"#.utf8))
        #expect(c1.expiresAt == Bed.t0 + 600_000)
        #expect(c1.attempts == 1 && c1.lastSentAt == Bed.t0 + 1)
        #expect(c1.reportedStatus == .queued)
        #expect(await queue.due(nowMs: Bed.t0 + 4, isOnline: Bed.online).isEmpty, "c1 still holds the device's place")

        // What was not confirmed upstream is still there, in the order of the changes.
        let unreported = try await queue.unreported()
        #expect(unreported.map { "\($0.commandID):\($0.status.rawValue)" } == ["c2:queued", "c3:queued", "c1:delivered", "d1:succeeded"])
        #expect(unreported.last?.result == Array(#"{"led":true}"#.utf8))
        guard case .repeated(let d1) = try await queue.receive(device: Bed.deviceB, payload: Bed.payload("d1"), nowMs: Bed.t0 + 5) else {
            Issue.record("a finished command stored before the restart is a repeat")
            return
        }
        #expect(d1.status == .succeeded)

        // Queue order holds across the restart, also for a command stored after it.
        let c4 = try await Bed.queue(queue, "c4", at: Bed.t0 + 5)
        #expect(c4.seq > c1.seq)
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "succeeded"), nowMs: Bed.t0 + 6)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 10) == ["dev-a/c2"])
        for record in try await queue.unreported() {
            #expect(try await queue.markReported(device: record.device, commandID: record.commandID, status: record.status))
        }
        await queue.close()
        let mode = try FileManager.default.attributesOfItem(atPath: store.path)[.posixPermissions] as? Int
        #expect(mode == 0o600, "commands may carry secrets for the device: owner-only file")

        // The re-send clock survives too; nothing is left to report.
        queue = try await open()
        #expect(try await queue.unreported().isEmpty)
        #expect(await queue.due(nowMs: Bed.t0 + 30_009, isOnline: Bed.online).isEmpty)
        let resend = await queue.due(nowMs: Bed.t0 + 30_010, isOnline: Bed.online)
        #expect(Bed.ids(resend) == ["dev-a/c2"])
        #expect(resend.first?.isResend == true)
        await queue.close()
    }

    @Test func purgeRemovesOnlyFinishedCommandsWhoseFinalStatusWasReported() async throws {
        let queue = try await open {
            $0.retentionSeconds = 100
            $0.inflightPerDevice = 2
        }
        try await Bed.queue(queue, "c1")
        try await Bed.queue(queue, "c2")
        try await Bed.queue(queue, "c3")
        _ = try await Bed.sendDue(queue, at: Bed.t0)
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "succeeded"), nowMs: Bed.t0 + 1)
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c2", "failed"), nowMs: Bed.t0 + 1)
        let later = Bed.t0 + 1 + 100_000 + 1

        #expect(try await queue.purge(nowMs: later) == 0, "not reported: kept however old")
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c1", status: .queued) == false)
        #expect(try await queue.purge(nowMs: later) == 0, "only its queued status was reported")
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c1", status: .succeeded))
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c2", status: .failed))
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c3", status: .queued))
        #expect(try await queue.purge(nowMs: Bed.t0 + 1 + 100_000) == 0, "not older than commands.retentionSeconds yet")
        #expect(try await queue.purge(nowMs: later) == 2)
        #expect(try await queue.record(device: Bed.deviceA, commandID: "c1") == nil)
        #expect(try await queue.purge(nowMs: Bed.t0 + 1_000_000_000) == 0, "an unfinished command is never purged")
        #expect(try await queue.record(device: Bed.deviceA, commandID: "c3")?.status == .queued)
        // Past the retention a repeat is a new command.
        let again = try await Bed.queue(queue, "c1", at: later)
        #expect(again.status == .queued)
        await queue.close()
    }

    @Test func reportingNeverGoesBackwardsNorAheadOfTheCommand() async throws {
        let queue = try await open()
        try await Bed.queue(queue, "c1")
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c1", status: .succeeded) == false, "not reached")
        #expect(try await queue.unreported().first?.reportedStatus == nil)
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c1", status: .queued))
        #expect(try await queue.unreported().isEmpty)
        _ = try await Bed.sendDue(queue, at: Bed.t0)
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "accepted"), nowMs: Bed.t0 + 1)
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "succeeded"), nowMs: Bed.t0 + 2)
        #expect(try await queue.unreported().map(\.status) == [.succeeded], "only the newest state is to send")
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c1", status: .succeeded))
        // A late confirmation of the delivered message does not undo it.
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "c1", status: .delivered))
        #expect(try await queue.record(device: Bed.deviceA, commandID: "c1")?.reportedStatus == .succeeded)
        #expect(try await queue.markReported(device: Bed.deviceA, commandID: "nope", status: .queued) == false)
        await queue.close()
    }

    @Test func aChangeTheStoreCannotCommitChangesNothing() async throws {
        let queue = try await open()
        try await Bed.queue(queue, "c1")
        await queue.close()
        await #expect(throws: SQLiteError.self) {
            _ = try await queue.receive(device: Bed.deviceA, payload: Bed.payload("c2"), nowMs: Bed.t0)
        }
        await #expect(throws: SQLiteError.self) {
            _ = try await queue.cancel(device: Bed.deviceA, commandID: "c1", nowMs: Bed.t0)
        }
        #expect(await queue.pending(device: Bed.deviceA) == PendingCommands(waiting: 1), "neither c2 nor the cancel were applied")
        #expect(Bed.ids(await queue.due(nowMs: Bed.t0, isOnline: Bed.online)) == ["dev-a/c1"])
    }
}
