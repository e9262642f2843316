import Commands
import Foundation
import GatewayCore
import Testing

@Suite(.timeLimit(.minutes(1))) final class CommandQueueTests: Sendable {
    let store = TemporaryStore()

    func open(_ configure: (inout CommandsConfiguration) -> Void = { _ in }) async throws -> CommandQueue {
        try await store.open(configure)
    }

    @Test func aCommandIsQueuedOnceAndARepeatIsAnsweredWithItsCurrentStatus() async throws {
        let queue = try await open()
        let first = try await Bed.queue(queue, "c1", #","params":{"a":1},"ttlSeconds":600"#)
        #expect(first.status == .queued)
        #expect(first.attempts == 0)
        #expect(first.expiresAt == Bed.t0 + 600_000)

        // The same id again, even with another name: not stored again.
        let again = try await queue.receive(device: Bed.deviceA, payload: Bed.payload("c1", name: "other"), nowMs: Bed.t0 + 1)
        guard case .repeated(let repeated) = again else { Issue.record("\(again)"); return }
        #expect(repeated.name == "blink")
        #expect(repeated.status == .queued)
        // The same id for another device is another command.
        try await Bed.queue(queue, "c1", device: Bed.deviceB)
        #expect(try await queue.list(device: Bed.deviceA).count == 1)

        // Finished: a repeat gets the final status, also when its expiresAt has passed since.
        _ = try await Bed.sendDue(queue, at: Bed.t0 + 2)
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "succeeded"), nowMs: Bed.t0 + 3)
        let late = try await queue.receive(
            device: Bed.deviceA, payload: Bed.payload("c1", #","expiresAt":\#(Bed.t0 + 10)"#), nowMs: Bed.t0 + 20)
        guard case .repeated(let finished) = late else { Issue.record("\(late)"); return }
        #expect(finished.status == .succeeded)
        #expect(try await queue.list(device: Bed.deviceA).count == 1)
        await queue.close()
    }

    @Test func aBadCommandIsRejectedAndNotStored() async throws {
        let queue = try await open()
        let outcome = try await queue.receive(device: Bed.deviceA, payload: Array(#"{"commandId":"c1","name":5}"#.utf8), nowMs: Bed.t0)
        guard case .rejected(let rejection) = outcome else { Issue.record("\(outcome)"); return }
        #expect(rejection.message == "invalid command: name must be a string")
        #expect(rejection.commandID == "c1")
        #expect(try await queue.list(device: nil).isEmpty)
        #expect(try await queue.unreported().isEmpty, "nothing stored, nothing to report")
        await queue.close()
    }

    @Test func commandsGoToEachDeviceInOrderOneAtATime() async throws {
        let queue = try await open()
        for id in ["c1", "c2", "c3"] { try await Bed.queue(queue, id) }
        try await Bed.queue(queue, "d1", device: Bed.deviceB)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 1) == ["dev-a/c1", "dev-b/d1"])
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 2) == [], "each device has its one command in flight")

        #expect(Bed.status(try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "accepted"), nowMs: Bed.t0 + 3)) == .delivered)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 4) == [], "delivered is still unfinished: it keeps its place")
        #expect(Bed.status(try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "succeeded"), nowMs: Bed.t0 + 5)) == .succeeded)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 6) == ["dev-a/c2"])
        #expect(Bed.status(try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c2", "failed"), nowMs: Bed.t0 + 7)) == .failed)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 8) == ["dev-a/c3"])
        await queue.close()
    }

    @Test func theInflightLimitIsConfigurable() async throws {
        let queue = try await open { $0.inflightPerDevice = 2 }
        for id in ["c1", "c2", "c3"] { try await Bed.queue(queue, id) }
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 1) == ["dev-a/c1", "dev-a/c2"])
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c2", "succeeded"), nowMs: Bed.t0 + 2)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 3) == ["dev-a/c3"], "c1 still holds a place")
        await queue.close()
    }

    @Test func aReloadedLimitAppliesToTheNextDecision() async throws {
        let queue = try await open()
        for id in ["c1", "c2", "c3"] { try await Bed.queue(queue, id) }
        #expect(try await Bed.sendDue(queue, at: Bed.t0) == ["dev-a/c1"])
        var configuration = await queue.configuration
        configuration.inflightPerDevice = 2
        configuration.maxPerDevice = 3
        await queue.reload(configuration)
        #expect(try await Bed.sendDue(queue, at: Bed.t0 + 1) == ["dev-a/c2"])
        guard case .rejected(let rejection) = try await queue.receive(device: Bed.deviceA, payload: Bed.payload("c4"), nowMs: Bed.t0 + 2) else {
            Issue.record("the lowered maxPerDevice was not applied")
            return
        }
        #expect(rejection.kind == .deviceQueueFull)
        await queue.close()
    }

    @Test func anOfflineDeviceIsSentNothingUntilItIsOnline() async throws {
        let queue = try await open()
        try await Bed.queue(queue, "c1")
        try await Bed.queue(queue, "d1", device: Bed.deviceB)
        #expect(await queue.due(nowMs: Bed.t0 + 1, isOnline: Bed.offline).isEmpty)
        #expect(await queue.nextWake(nowMs: Bed.t0 + 1, isOnline: Bed.offline) == nil, "nothing expires: nothing to wake for")
        let onlyB: @Sendable (DeviceID) -> Bool = { $0 == Bed.deviceB }
        #expect(Bed.ids(await queue.due(nowMs: Bed.t0 + 1, isOnline: onlyB)) == ["dev-b/d1"])
        #expect(await queue.nextWake(nowMs: Bed.t0 + 1, isOnline: onlyB) == Bed.t0 + 1, "a command waits for an online device: now")
        #expect(Bed.ids(await queue.due(nowMs: Bed.t0 + 1, isOnline: Bed.online, device: Bed.deviceA)) == ["dev-a/c1"])
        await queue.close()
    }

    @Test func anUnansweredCommandIsSentAgainWithTheSameIdAfterTheAckTimeout() async throws {
        let queue = try await open { $0.ackTimeoutSeconds = 30 }
        try await Bed.queue(queue, "c1", #","params":{"led":"on"}"#)
        try await Bed.queue(queue, "c2")
        let first = await queue.due(nowMs: Bed.t0, isOnline: Bed.online)
        #expect(first.count == 1 && !first[0].isResend)
        try await queue.markSent(first.map(\.record.key), nowMs: Bed.t0)
        #expect(await queue.nextWake(nowMs: Bed.t0, isOnline: Bed.online) == Bed.t0 + 30_000)
        #expect(await queue.due(nowMs: Bed.t0 + 29_999, isOnline: Bed.online).isEmpty)
        #expect(await queue.nextWake(nowMs: Bed.t0 + 1, isOnline: Bed.offline) == nil, "no re-send to an offline device")

        let again = await queue.due(nowMs: Bed.t0 + 30_000, isOnline: Bed.online)
        #expect(Bed.ids(again) == ["dev-a/c1"], "c1 again, and c2 still waits")
        #expect(again.first?.isResend == true)
        #expect(again.first?.payload == first.first?.payload, "the same commandId and body")
        let sent = try await queue.markSent(device: Bed.deviceA, commandID: "c1", nowMs: Bed.t0 + 30_000)
        #expect(sent?.attempts == 2)
        #expect(sent?.lastSentAt == Bed.t0 + 30_000)

        // Once accepted it is not sent again, however long the device works on it.
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "accepted"), nowMs: Bed.t0 + 31_000)
        #expect(await queue.due(nowMs: Bed.t0 + 10_000_000, isOnline: Bed.online).isEmpty)
        #expect(await queue.nextWake(nowMs: Bed.t0 + 31_000, isOnline: Bed.online) == nil)
        await queue.close()
    }

    @Test func aCommandExpiresWhetherOrNotItWasSentAndIsNeverSentAfterwards() async throws {
        let queue = try await open()
        try await Bed.queue(queue, "sent", #","ttlSeconds":10"#)
        try await Bed.queue(queue, "unsent", #","ttlSeconds":20"#)
        try await Bed.queue(queue, "forever")
        try await Bed.queue(queue, "accepted", device: Bed.deviceB, #","expiresAt":\#(Bed.t0 + 15_000)"#)
        #expect(try await Bed.sendDue(queue, at: Bed.t0) == ["dev-a/sent", "dev-b/accepted"])
        let accepted = try await queue.result(device: Bed.deviceB, payload: Bed.resultPayload("accepted", "accepted", #","message":"working""#), nowMs: Bed.t0 + 1)
        #expect(Bed.status(accepted) == .delivered)
        #expect(await queue.nextWake(nowMs: Bed.t0 + 1, isOnline: Bed.offline) == Bed.t0 + 10_000)

        // At its expiry a command is no longer offered, even before expire() ran.
        #expect(Bed.ids(await queue.due(nowMs: Bed.t0 + 10_000, isOnline: Bed.online)) == ["dev-a/unsent"])
        #expect(try await queue.expire(nowMs: Bed.t0 + 9_999).isEmpty)
        let first = try await queue.expire(nowMs: Bed.t0 + 10_000)
        #expect(first.map(\.commandID) == ["sent"])
        #expect(first.first?.status == .expired)
        #expect(first.first?.updatedAt == Bed.t0 + 10_000)
        // Offline the whole time: the rest expire all the same.
        let rest = try await queue.expire(nowMs: Bed.t0 + 20_000)
        #expect(rest.map(\.commandID) == ["unsent", "accepted"])
        #expect(rest.allSatisfy { $0.status == .expired && $0.message == nil })
        #expect(Bed.ids(await queue.due(nowMs: Bed.t0 + 20_000, isOnline: Bed.online)) == ["dev-a/forever"])
        // A result after the expiry does not bring it back.
        let late = try await queue.result(device: Bed.deviceB, payload: Bed.resultPayload("accepted", "succeeded"), nowMs: Bed.t0 + 21_000)
        #expect(Bed.ignoredReason(late) == .finished)
        #expect(try await queue.record(device: Bed.deviceB, commandID: "accepted")?.status == .expired)
        await queue.close()
    }

    @Test func aFullQueueRefusesNewCommandsButAnswersRepeats() async throws {
        let queue = try await open {
            $0.maxPerDevice = 2
            $0.maxTotal = 3
        }
        try await Bed.queue(queue, "c1")
        try await Bed.queue(queue, "c2")
        let full = try await queue.receive(device: Bed.deviceA, payload: Bed.payload("c3"), nowMs: Bed.t0)
        guard case .rejected(let rejection) = full else { Issue.record("\(full)"); return }
        #expect(rejection.reason == .queueFull)
        #expect(rejection.kind == .deviceQueueFull)
        #expect(rejection.message == "queue full: the device has 2 unfinished commands (commands.maxPerDevice)")
        #expect(rejection.commandID == "c3")
        guard case .repeated = try await queue.receive(device: Bed.deviceA, payload: Bed.payload("c2"), nowMs: Bed.t0) else {
            Issue.record("a repeat is answered with its status, full or not")
            return
        }
        try await Bed.queue(queue, "d1", device: Bed.deviceB)
        let hubFull = try await queue.receive(device: Bed.deviceB, payload: Bed.payload("d2"), nowMs: Bed.t0)
        guard case .rejected(let total) = hubFull else { Issue.record("\(hubFull)"); return }
        #expect(total.kind == .hubQueueFull)
        #expect(total.message == "queue full: the hub holds 3 unfinished commands (commands.maxTotal)")

        // A finished command makes room; the refused one was not stored and can come again.
        _ = try await Bed.sendDue(queue, at: Bed.t0 + 1)
        #expect(Bed.status(try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "rejected", #","message":"busy""#), nowMs: Bed.t0 + 2)) == .rejected)
        try await Bed.queue(queue, "c3", at: Bed.t0 + 3)
        #expect(await queue.pending(device: Bed.deviceA) == PendingCommands(waiting: 2))
        await queue.close()
    }

    @Test func onlyACommandNeverSentCanBeCancelled() async throws {
        let queue = try await open { $0.inflightPerDevice = 2 }
        for id in ["sent", "accepted", "waiting"] { try await Bed.queue(queue, id) }
        try await Bed.queue(queue, "done", device: Bed.deviceB)
        #expect(try await Bed.sendDue(queue, at: Bed.t0) == ["dev-a/sent", "dev-a/accepted", "dev-b/done"])
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("accepted", "accepted"), nowMs: Bed.t0 + 1)
        _ = try await queue.result(device: Bed.deviceB, payload: Bed.resultPayload("done", "succeeded"), nowMs: Bed.t0 + 1)

        func refusal(_ device: DeviceID, _ id: String) async throws -> CancelRefusal.Reason? {
            if case .refused(let refusal) = try await queue.cancel(device: device, commandID: id, nowMs: Bed.t0 + 2) { return refusal.reason }
            return nil
        }
        #expect(try await refusal(Bed.deviceA, "sent") == .alreadySent)
        #expect(try await refusal(Bed.deviceA, "accepted") == .alreadyDelivered)
        #expect(try await refusal(Bed.deviceB, "done") == .alreadyFinished)
        #expect(try await refusal(Bed.deviceA, "nope") == .notFound)
        #expect(try await refusal(Bed.deviceB, "waiting") == .notFound, "another device's command")

        let outcome = try await queue.cancel(device: Bed.deviceA, commandID: "waiting", nowMs: Bed.t0 + 3)
        guard case .cancelled(let cancelled) = outcome else { Issue.record("\(outcome)"); return }
        #expect(cancelled.status == .rejected)
        #expect(cancelled.message == "cancelled")
        #expect(cancelled.updatedAt == Bed.t0 + 3)
        #expect(try await refusal(Bed.deviceA, "waiting") == .alreadyFinished)
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("sent", "succeeded"), nowMs: Bed.t0 + 4)
        #expect(await queue.due(nowMs: Bed.t0 + 5, isOnline: Bed.online).isEmpty, "a cancelled command is never sent")
        await queue.close()
    }

    @Test func resultsMoveForwardOnlyAndStrayOnesAreIgnored() async throws {
        let queue = try await open { $0.inflightPerDevice = 3 }
        for id in ["c1", "c2", "c3"] { try await Bed.queue(queue, id) }
        _ = try await Bed.sendDue(queue, at: Bed.t0)
        let accept = { (id: String, status: String, extra: String) async throws -> ResultOutcome in
            try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload(id, status, extra), nowMs: Bed.t0 + 10)
        }
        #expect(Bed.status(try await accept("c1", "accepted", "")) == .delivered)
        #expect(Bed.ignoredReason(try await accept("c1", "accepted", "")) == .repeated)
        let succeeded = try await accept("c1", "succeeded", #","result":{"led": "on"},"message":"ok""#)
        guard case .changed(let record) = succeeded else { Issue.record("\(succeeded)"); return }
        #expect(record.status == .succeeded)
        #expect(record.result == Array(#"{"led": "on"}"#.utf8))
        #expect(record.message == "ok")
        // A late accepted (or any other answer) after the final status changes nothing.
        #expect(Bed.ignoredReason(try await accept("c1", "accepted", "")) == .finished)
        #expect(Bed.ignoredReason(try await accept("c1", "failed", "")) == .finished)
        #expect(try await queue.record(device: Bed.deviceA, commandID: "c1")?.status == .succeeded)
        // A final status without a prior accepted is fine.
        #expect(Bed.status(try await accept("c2", "failed", #","message":"no LED""#)) == .failed)
        #expect(Bed.status(try await accept("c3", "rejected", "")) == .rejected)
        // Unknown, another device's, unreadable.
        #expect(Bed.ignoredReason(try await accept("c9", "succeeded", "")) == .unknown)
        let other = try await queue.result(device: Bed.deviceB, payload: Bed.resultPayload("c1", "succeeded"), nowMs: Bed.t0)
        #expect(Bed.ignoredReason(other) == .unknown)
        #expect(Bed.ignoredReason(try await accept("c1", "finished", "")) == .invalid)
        await queue.close()
    }

    @Test func statusMessagesAndDeviceCommandsHaveTheContractsShape() async throws {
        let queue = try await open()
        let record = try await Bed.queue(queue, "c1", #","params":{"times": 2},"ttlSeconds":5"#)
        let delivery = try #require(await queue.due(nowMs: Bed.t0, isOnline: Bed.online).first)
        #expect(String(decoding: delivery.payload, as: UTF8.self)
            == #"{"commandId":"c1","name":"blink","params":{"times": 2},"expiresAt":\#(Bed.t0 + 5000)}"#)
        let queued = CommandStatusMessage.encode(record, hubID: "hub-1")
        #expect(String(decoding: queued, as: UTF8.self)
            == #"{"commandId":"c1","hubId":"hub-1","deviceId":"dev-a","status":"queued","result":null,"message":null,"at":\#(Bed.t0)}"#)

        let bare = try await Bed.queue(queue, "c2")
        #expect(String(decoding: CommandDeliveryPayload.encode(bare), as: UTF8.self)
            == #"{"commandId":"c2","name":"blink","params":null,"expiresAt":null}"#)

        try await queue.markSent([record.key], nowMs: Bed.t0)
        let done = try await queue.result(
            device: Bed.deviceA, payload: Bed.resultPayload("c1", "succeeded", #","result":[1, "two"],"message":"said \"hi\"""#), nowMs: Bed.t0 + 7)
        guard case .changed(let finished) = done else { Issue.record("\(done)"); return }
        let message = try #require(try JSONSerialization.jsonObject(with: Data(CommandStatusMessage.encode(finished, hubID: "hub-1"))) as? [String: Any])
        #expect(message["status"] as? String == "succeeded")
        #expect(message["message"] as? String == #"said "hi""#)
        #expect((message["result"] as? [Any])?.count == 2)
        #expect((message["at"] as? NSNumber)?.int64Value == Bed.t0 + 7)

        let rejection = CommandRejection.unknownDevice(commandID: nil)
        #expect(String(decoding: CommandStatusMessage.encode(rejection, device: Bed.deviceB, hubID: "hub-1", at: 5), as: UTF8.self)
            == #"{"commandId":null,"hubId":"hub-1","deviceId":"dev-b","status":"rejected","result":null,"message":"unknown device","at":5}"#)
        // The contract's reason exactly in `message`; the detail in `result`.
        let full = CommandRejection(reason: .queueFull, kind: .deviceQueueFull, detail: "the device has 2 unfinished commands", commandID: "c9")
        #expect(String(decoding: CommandStatusMessage.encode(full, device: Bed.deviceB, hubID: "hub-1", at: 6), as: UTF8.self)
            == #"{"commandId":"c9","hubId":"hub-1","deviceId":"dev-b","status":"rejected","result":{"detail":"the device has 2 unfinished commands"},"message":"queue full","at":6}"#)
        await queue.close()
    }

    @Test func pendingCountsFollowTheCommandsStates() async throws {
        let queue = try await open { $0.inflightPerDevice = 2 }
        for id in ["c1", "c2", "c3", "c4"] { try await Bed.queue(queue, id) }
        try await Bed.queue(queue, "d1", device: Bed.deviceB)
        _ = try await Bed.sendDue(queue, at: Bed.t0, isOnline: { $0 == Bed.deviceA })
        _ = try await queue.result(device: Bed.deviceA, payload: Bed.resultPayload("c1", "accepted"), nowMs: Bed.t0 + 1)
        #expect(await queue.pending(device: Bed.deviceA) == PendingCommands(waiting: 2, inFlight: 1, delivered: 1))
        #expect(await queue.pending() == [Bed.deviceA: PendingCommands(waiting: 2, inFlight: 1, delivered: 1), Bed.deviceB: PendingCommands(waiting: 1)])
        let list = try await queue.list(device: Bed.deviceA)
        #expect(list.map(\.commandID) == ["c1", "c2", "c3", "c4"])
        await queue.close()
    }
}
