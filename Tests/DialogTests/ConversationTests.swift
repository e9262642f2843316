import Foundation
import GatewayCore
import MLLink
import Testing
import Users

@testable import Dialog

/// The decisions of a dialog after its transcript, with no I/O.
@Suite struct ConversationTests {
    func conversation(userID: String?, user: UserLookup?, policy: UsersConfiguration.UnknownUserPolicy = .allow) throws -> Conversation {
        let start = AudioMessage.AudioStart(session: UUID(), codec: .pcm, sampleRate: 16000, channels: 1, language: "en-US", userID: userID)
        let session = try DialogSession(device: DeviceID("dev-1")!, start: start, configuration: DialogConfiguration(hubID: "hub-1"))
        return Conversation(
            session: session, transcript: "lights on", transcriptConfidence: 0.9, endpoint: MLEndpoint(host: "127.0.0.1", port: 50051),
            userID: userID, user: user, unknownUserPolicy: policy)
    }

    @Test func aKnownUserIsAnsweredWithTheIntentServicesAnswer() throws {
        var known = try conversation(userID: "alice", user: .found(UserRecord(id: "alice")))
        #expect(known.wantsIntent)
        known.answer(IntentAnalysis(intent: "light.on", confidence: 0.8, entities: ["room": "kitchen"], replyText: "On"))
        #expect(known.record.userSource == "service")
        #expect(known.record.outcome == "answered")
        let response = known.response
        #expect(response.kind == .dialogResponse)
        let payload = try #require(try JSONSerialization.jsonObject(with: Data(response.payload)) as? [String: Any])
        #expect(payload["intent"] as? String == "light.on")
        #expect(payload["replyText"] as? String == "On")
        #expect((payload["entities"] as? [String: String]) == ["room": "kitchen"])
    }

    @Test func aBlockedUserIsRefusedWithoutTheIntentService() throws {
        let blocked = try conversation(userID: "mallory", user: .found(UserRecord(id: "mallory", blocked: true)))
        #expect(!blocked.wantsIntent)
        #expect(blocked.record.outcome == "blocked")
        #expect(blocked.record.intent == "user.blocked")
        let cachedBlocked = try conversation(userID: "mallory", user: .cached(UserRecord(id: "mallory", blocked: true), reason: "the user service is down"))
        #expect(cachedBlocked.record.userSource == "cache")
        #expect(cachedBlocked.record.outcome == "blocked")
    }

    @Test(arguments: [UsersConfiguration.UnknownUserPolicy.allow, .deny])
    func anUnknownUserFollowsThePolicy(_ policy: UsersConfiguration.UnknownUserPolicy) throws {
        for (userID, lookup, source) in [("bob", UserLookup.notFound, "not found"), ("bob", .unavailable(reason: "down"), "unavailable")] as [(String, UserLookup, String)] {
            let unknown = try conversation(userID: userID, user: lookup, policy: policy)
            #expect(unknown.record.userSource == source)
            #expect(unknown.wantsIntent == (policy == .allow))
            #expect(unknown.record.outcome == (policy == .allow ? "answered" : "denied"))
        }
        let nobody = try conversation(userID: nil, user: nil, policy: policy)
        #expect(nobody.record.userSource == "none")
        #expect(nobody.wantsIntent == (policy == .allow))
    }

    @Test func theCompletedEventIsKeyedByTheUserElseTheDevice() throws {
        let withUser = try conversation(userID: "alice", user: .found(UserRecord(id: "alice"))).completedEvent(hubID: "hub-1", atMs: 1000)
        #expect(withUser.key == "alice")
        #expect(withUser.device == "dev-1")
        #expect(withUser.eventID.hasPrefix("dialog-"))
        let envelope = try #require(try JSONSerialization.jsonObject(with: Data(withUser.payload)) as? [String: Any])
        #expect(envelope["type"] as? String == "DialogCompleted")
        let withoutUser = try conversation(userID: nil, user: nil).completedEvent(hubID: "hub-1", atMs: 1000)
        #expect(withoutUser.key == "dev-1")
    }
}
