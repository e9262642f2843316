import Foundation
import GatewayCore
import MLLink

/// What one answered dialog came to: the `DIALOG_RESPONSE` payload and the `DialogCompleted`
/// event's `data`.
struct DialogRecord {
    struct Timings {
        /// Start message to end message (the audio's length as the gateway saw it).
        var audioMs: Int64 = 0
        /// End message to the final transcript.
        var transcriptionMs: Int64 = 0
        /// Waiting for the user lookup after the transcript (it runs during the audio).
        var userLookupMs: Int64 = 0
        /// `AnalyzeIntent`.
        var intentMs: Int64 = 0
        /// Start message to the answer.
        var totalMs: Int64 = 0

        init() {}

        init(session: DialogSession, transcribedAt: ContinuousClock.Instant, lookupDoneAt: ContinuousClock.Instant, analyzedAt: ContinuousClock.Instant) {
            let end = session.endReceivedAt ?? transcribedAt
            audioMs = Self.ms(session.startedAt.duration(to: end))
            transcriptionMs = Self.ms(end.duration(to: transcribedAt))
            userLookupMs = Self.ms(transcribedAt.duration(to: lookupDoneAt))
            intentMs = Self.ms(lookupDoneAt.duration(to: analyzedAt))
            totalMs = Self.ms(session.startedAt.duration(to: analyzedAt))
        }

        static func ms(_ duration: Duration) -> Int64 {
            max(0, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
        }
    }

    let session: DialogSession
    let transcript: String
    let transcriptConfidence: Float
    let endpoint: MLEndpoint
    var userID = ""
    /// `service`, `cache`, `not found`, `unavailable` or `none` (no user id given).
    var userSource = "none"
    var blocked = false
    /// `answered`, `blocked` or `denied` (unknown user under `users.unknownUserPolicy: deny`).
    var outcome = "answered"
    var intent = ""
    var confidence: Float = 0
    var entities: [String: String] = [:]
    var replyText = ""
    var timings = Timings()

    init(session: DialogSession, transcript: String, transcriptConfidence: Float, endpoint: MLEndpoint) {
        self.session = session
        self.transcript = transcript
        self.transcriptConfidence = transcriptConfidence
        self.endpoint = endpoint
    }

    /// `{"session", "transcript", "intent", "confidence", "entities", "replyText"}` (CONTRACTS.md §1).
    var responsePayload: [UInt8] {
        var json = JSONText(capacity: 256 + transcript.utf8.count + replyText.utf8.count)
        json.field("session", string: session.start.session.uuidString.lowercased())
        json.field("transcript", string: transcript)
        json.field("intent", string: intent)
        json.field("confidence", float: confidence)
        json.field("entities", rawJSON: JSONText.object(entities))
        json.field("replyText", string: replyText)
        return json.finish()
    }

    /// The `data` of the `DialogCompleted` event.
    func eventData(hubID: String) -> [UInt8] {
        var times = JSONText(capacity: 128)
        times.field("audioMs", int: timings.audioMs)
        times.field("transcriptionMs", int: timings.transcriptionMs)
        times.field("userLookupMs", int: timings.userLookupMs)
        times.field("intentMs", int: timings.intentMs)
        times.field("totalMs", int: timings.totalMs)
        let statistics = session.statistics
        var json = JSONText(capacity: 512 + transcript.utf8.count + replyText.utf8.count)
        json.field("session", string: session.start.session.uuidString.lowercased())
        json.field("deviceId", string: session.device.rawValue)
        json.field("userId", string: userID.isEmpty ? nil : userID)
        json.field("userSource", string: userSource)
        json.field("outcome", string: outcome)
        json.field("language", string: session.start.language)
        json.field("codec", string: session.start.codec.rawValue)
        json.field("transcript", string: transcript)
        json.field("transcriptConfidence", float: transcriptConfidence)
        json.field("intent", string: intent)
        json.field("confidence", float: confidence)
        json.field("entities", rawJSON: JSONText.object(entities))
        json.field("replyText", string: replyText)
        json.field("mlEndpoint", string: "\(endpoint)")
        json.field("frames", int: Int64(statistics.frames))
        json.field("gaps", int: Int64(statistics.gaps))
        json.field("lateFrames", int: Int64(statistics.late))
        json.field("startedAt", int: Int64(session.startedAtWall.timeIntervalSince1970 * 1000))
        json.field("timings", rawJSON: times.finish())
        return json.finish()
    }
}
