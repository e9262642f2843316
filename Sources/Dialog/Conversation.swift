import Foundation
import GatewayCore
import MLLink
import Outbox
import Users

/// What one dialog comes to once its audio is transcribed, decided without any I/O: who the user
/// is and whether the request is answered (a blocked user, or an unknown one under
/// `users.unknownUserPolicy: deny`, is not), the answer, the `DIALOG_RESPONSE` and the
/// `DialogCompleted` event. ``Dialog`` does the calls (transcription, user lookup, intent) and
/// hands their results here.
struct Conversation {
    private(set) var record: DialogRecord

    /// - Parameters:
    ///   - userID: the user the start named, else the one the device is registered to.
    ///   - user: what the user service (or its cache) said about `userID`; nil when there is no user id.
    init(
        session: DialogSession, transcript: String, transcriptConfidence: Float, endpoint: MLEndpoint,
        userID: String?, user: UserLookup?, unknownUserPolicy: UsersConfiguration.UnknownUserPolicy
    ) {
        record = DialogRecord(session: session, transcript: transcript, transcriptConfidence: transcriptConfidence, endpoint: endpoint)
        record.userID = userID ?? ""
        switch user {
        case .found(let found)?:
            record.userSource = "service"
            record.blocked = found.blocked
        case .cached(let cached, _)?:
            record.userSource = "cache"
            record.blocked = cached.blocked
        case .notFound?, .unavailable?, nil:
            record.userSource = userID == nil ? "none" : (user == .notFound ? "not found" : "unavailable")
            if unknownUserPolicy == .deny {
                record.outcome = "denied"
            }
        }
        if record.blocked { record.outcome = "blocked" }
        if record.outcome != "answered" {
            record.intent = record.outcome == "blocked" ? "user.blocked" : "user.unknown"
            record.confidence = 1
            record.replyText = record.outcome == "blocked"
                ? "This user is blocked; the request was not processed."
                : "This user is not known to the gateway; the request was not processed."
        }
    }

    /// Whether the request goes on to the intent service (else it is answered as refused).
    var wantsIntent: Bool { record.outcome == "answered" }

    /// The intent service's answer.
    mutating func answer(_ analysis: IntentAnalysis) {
        record.intent = analysis.intent
        record.confidence = analysis.confidence
        record.entities = analysis.entities
        record.replyText = analysis.replyText
    }

    /// How long each part took.
    mutating func time(_ timings: DialogRecord.Timings) {
        record.timings = timings
    }

    /// The `DIALOG_RESPONSE` to the device.
    var response: DeviceResponse {
        DeviceResponse(device: record.session.device, kind: .dialogResponse, payload: record.responsePayload)
    }

    /// The `DialogCompleted` event for the outbox: event id `dialog-{session}` (a repeat is a
    /// duplicate), keyed by the user (else the device), so it reaches the cloud like any event.
    func completedEvent(hubID: String, atMs now: Int64) -> OutboxRecord {
        let device = record.session.device
        let event = DeviceEvent(
            device: device, eventID: "dialog-\(record.session.start.session.uuidString.lowercased())", type: "DialogCompleted",
            timestamp: now, data: record.eventData(hubID: hubID))
        let key = record.userID.isEmpty ? device.rawValue : record.userID
        return OutboxRecord(
            device: device.rawValue, eventID: event.eventID, key: key, receivedAt: now,
            payload: UpstreamEnvelope.encode(event, hubID: hubID, key: key, receivedAt: now))
    }

    /// A `TRANSCRIPT_PARTIAL` payload: `{"session", "text", "confidence"}`.
    static func partial(session: UUID, _ result: Transcription) -> [UInt8] {
        var payload = JSONText(capacity: 96 + result.text.utf8.count)
        payload.field("session", string: session.uuidString.lowercased())
        payload.field("text", string: result.text)
        payload.field("confidence", float: result.confidence)
        return payload.finish()
    }
}
