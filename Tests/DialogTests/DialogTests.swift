import BrokerTestSupport
import DeviceLink
import Foundation
import GatewayCore
import MLFake
import MLLink
import Testing

@testable import Dialog

/// The dialog's rules, against the device edge's protocols (an inbox fed by a stream, recorded
/// replies): no broker. The full path with a broker and the daemon is in
/// IntegrationTests/VoiceDialogTests.
@Suite struct DialogTests {
    @Test func aMalformedAudioMessageIsAnsweredWithAnError() async throws {
        let bed = try DialogBed()
        bed.send(raw: [0x01, 0x7b], from: "dev-1")
        let responses = try await bed.replies.waitFor(1)
        #expect(responses[0].kind == .error)
        #expect(responses[0].device.rawValue == "dev-1")
        #expect(responses[0].field("code") == "malformed_audio")
        await bed.stop()
    }

    @Test func anAudioMessageOverTheLimitIsRefusedBeforeItIsRead() async throws {
        let bed = try DialogBed(configure: { $0.maxAudioMessageBytes = 1024 })
        bed.send(AudioMessage.frame(UUID(), 0), from: "dev-1")  // 640 bytes of audio: under the limit, no session
        bed.send(raw: [UInt8](repeating: 0x02, count: 1025), from: "dev-1")
        let responses = try await bed.replies.waitFor(1)
        #expect(responses.map { $0.field("code") } == ["malformed_audio"])
        #expect(responses[0].field("message")?.contains("exceeds the limit of 1024") == true, "\(responses)")
        await bed.stop()
    }

    @Test func audioUnderTheHubsIdFromTheBrokerIsIgnoredWhileTheHubsOwnIsTaken() async throws {
        let bed = try DialogBed(hubID: "hub-1")
        // From the broker under hub.id: dropped without an answer. The malformed message after it
        // is answered, so when its answer is there the first was handled (in order) and not answered.
        bed.send(AudioMessage.start(UUID()), from: "hub-1")
        bed.send(raw: [0xff], from: "dev-1")
        let first = try await bed.replies.waitFor(1)
        #expect(first.map(\.device.rawValue) == ["dev-1"])
        // From inside the hub (its microphone): a session, which ends ml_unavailable (no endpoints).
        let session = UUID()
        #expect(bed.dialog.submit(audio: AudioMessage.start(session).bytes, from: DeviceID("hub-1")!))
        let both = try await bed.replies.waitFor(2)
        #expect(both[1].device.rawValue == "hub-1")
        #expect(both[1].field("code") == "ml_unavailable")
        #expect(both[1].field("session") == session.uuidString.lowercased())
        await bed.stop()
    }

    @Test func invalidTopicsAreCountedAndNeverAnswered() async throws {
        let bed = try DialogBed()
        bed.sendInvalid(.notADeviceTopic(escaped: "device/x/audio/extra"))
        bed.sendInvalid(.invalidDeviceID(escaped: "bad id"))
        bed.send(raw: [0xff], from: "dev-1")
        let responses = try await bed.replies.waitFor(1)
        #expect(responses.map(\.device.rawValue) == ["dev-1"])
        await bed.stop()
    }

    @Test func aStartNamingAnotherUserThanTheRegisteredOneIsRefused() async throws {
        let bed = try DialogBed(registeredUser: { $0.rawValue == "dev-1" ? "alice" : nil }, configure: { $0.verifiesUserID = true })
        let session = UUID()
        bed.send(AudioMessage.start(session, userID: "mallory"), from: "dev-1")
        bed.send(AudioMessage.start(UUID(), userID: "alice"), from: "dev-2")  // not registered: may not name anyone
        let responses = try await bed.replies.waitFor(2)
        #expect(responses.map { $0.field("code") } == ["user_mismatch", "user_mismatch"])
        #expect(responses[0].field("session") == session.uuidString.lowercased())
        await bed.stop()
    }

    @Test func aSecondSessionOfOneDeviceIsRefusedWhileTheFirstIsOpen() async throws {
        // A service that holds the stream open until the gateway closes its side keeps the first
        // session open while the second start arrives.
        let service = FakeMLService(name: "ml")
        let port = try await service.start()
        var ml = MLConfiguration()
        ml.targets = [.address(MLEndpoint(host: "127.0.0.1", port: port))]
        let bed = try DialogBed(ml: ml, configure: { $0.maxSessionsPerDevice = 1 })
        let first = UUID()
        let second = UUID()
        bed.send(AudioMessage.start(first), from: "dev-1")
        bed.send(AudioMessage.start(second), from: "dev-1")
        let refused = try await bed.replies.waitFor(1)
        #expect(refused[0].field("code") == "too_many_sessions")
        #expect(refused[0].field("session") == second.uuidString.lowercased())
        // The first one goes on to its answer.
        bed.send(AudioMessage.frame(first, 0), from: "dev-1")
        bed.send(AudioMessage.end(session: first, lastSequence: 0), from: "dev-1")
        try await Poll.until("the first session's answer") { bed.replies.responses.contains { $0.kind == .dialogResponse } }
        await bed.stop()
        await service.stop()
    }

    @Test func aWholeDialogIsAnsweredAndBecomesADialogCompletedEvent() async throws {
        var script = FakeMLService.Script()
        script.transcript = "turn on the light"
        script.replyText = "Done"
        let service = FakeMLService(name: "ml", script: script)
        let port = try await service.start()
        var ml = MLConfiguration()
        ml.targets = [.address(MLEndpoint(host: "127.0.0.1", port: port))]
        let bed = try DialogBed(ml: ml, configure: { $0.partials = false })
        let session = UUID()
        bed.send(AudioMessage.start(session, userID: nil), from: "dev-1")
        for sequence in 0..<5 { bed.send(AudioMessage.frame(session, UInt32(sequence)), from: "dev-1") }
        bed.send(AudioMessage.end(session: session, lastSequence: 4), from: "dev-1")
        let responses = try await bed.replies.waitFor(1)
        #expect(responses[0].kind == .dialogResponse)
        #expect(responses[0].field("transcript") == "turn on the light")
        #expect(responses[0].field("intent") == "intent:turn on the light")
        #expect(responses[0].field("replyText") == "Done")
        try await Poll.until("the DialogCompleted event", asking: { (try? await bed.events().count) ?? 0 >= 1 })
        let events = try await bed.events()
        #expect(events.map(\.eventID) == ["dialog-\(session.uuidString.lowercased())"])
        #expect(service.streams.withLock { $0.first?.chunks.count } == 5)
        await bed.stop()
        await service.stop()
    }

    @Test func aResponseThatCannotBeSentIsTriedAgainThenSent() async throws {
        let bed = try DialogBed(configure: { $0.responseAttempts = 3 })
        bed.replies.failNext(2)
        bed.send(raw: [0xff], from: "dev-1")
        let responses = try await bed.replies.waitFor(1)
        #expect(responses[0].field("code") == "malformed_audio")
        #expect(bed.replies.attempts == 3)
        await bed.stop()
    }

    @Test func aResponseIsGivenUpAfterItsAttempts() async throws {
        let bed = try DialogBed(configure: { $0.responseAttempts = 2 })
        bed.replies.failNext(2)
        bed.send(raw: [0xff], from: "dev-1")
        // The next answer goes out at once: by then the first was tried twice and given up
        // (its retry runs 250 ms later; the second message waits for it below).
        try await Poll.until("both attempts of the first response") { bed.replies.attempts >= 2 }
        bed.send(raw: [0xfe], from: "dev-2")
        let responses = try await bed.replies.waitFor(1)
        #expect(responses.map(\.device.rawValue) == ["dev-2"])
        #expect(bed.replies.attempts == 3)
        await bed.stop()
    }
}
