import Foundation

/// A message to a device on `device/{id}/response` (CONTRACTS.md §1): the envelope
/// `{"messageId", "timestamp", "type", "payload"}`.
public struct DeviceResponse: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case transcriptPartial = "TRANSCRIPT_PARTIAL"
        case dialogResponse = "DIALOG_RESPONSE"
        case registrationResult = "REGISTRATION_RESULT"
        case error = "ERROR"
    }

    /// Codes of `ERROR` responses (`payload.code`).
    public enum ErrorCode: String, Sendable, CaseIterable {
        /// An audio message that does not follow the framing (`payload.message` says how).
        case malformedAudio = "malformed_audio"
        /// Codec, rate or channel count the gateway cannot handle for this session.
        case unsupportedAudio = "unsupported_audio"
        /// `dialog.maxSessions` or `dialog.maxSessionsPerDevice` reached.
        case tooManySessions = "too_many_sessions"
        /// Nothing arrived for the session within `dialog.sessionTimeoutMs`.
        case sessionTimeout = "session_timeout"
        /// The session ran longer than `dialog.maxSessionSeconds`.
        case sessionTooLong = "session_too_long"
        /// No ML endpoint could take the call (all breakers open, none configured).
        case mlUnavailable = "ml_unavailable"
        /// The ML service failed the call or did not answer within its deadline.
        case mlFailed = "ml_failed"
        /// The ML service ended the stream without a final transcript.
        case noTranscript = "no_transcript"
        /// The gateway is shutting down.
        case shuttingDown = "shutting_down"
        /// The session reached one of its budgets: `dialog.maxFramesPerSession`,
        /// `dialog.maxSessionAudioBytes` or `dialog.maxBufferedAudioBytes` (`payload.message` says which).
        case sessionLimit = "session_limit"
        /// The start names a user other than the one the device is registered to.
        case userMismatch = "user_mismatch"
        /// The device id is reserved for the hub itself (`hub.id`).
        case reservedDevice = "reserved_device_id"
    }

    public var device: DeviceID
    public var kind: Kind
    public var messageID: UUID
    /// Milliseconds since the epoch.
    public var timestamp: Int64
    /// The payload object, as JSON.
    public var payload: [UInt8]

    public init(device: DeviceID, kind: Kind, payload: [UInt8], messageID: UUID = UUID(), timestamp: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        self.device = device
        self.kind = kind
        self.payload = payload
        self.messageID = messageID
        self.timestamp = timestamp
    }

    /// An `ERROR` response: `{"code", "message"}`, plus `session` when the error belongs to one.
    public static func error(device: DeviceID, code: ErrorCode, message: String, session: UUID? = nil) -> DeviceResponse {
        var payload = JSONText(capacity: 96 + message.utf8.count)
        payload.field("code", string: code.rawValue)
        payload.field("message", string: message)
        if let session { payload.field("session", string: session.uuidString.lowercased()) }
        return DeviceResponse(device: device, kind: .error, payload: payload.finish())
    }

    public var bytes: [UInt8] {
        var json = JSONText(capacity: 96 + payload.count)
        json.field("messageId", string: messageID.uuidString.lowercased())
        json.field("timestamp", int: timestamp)
        json.field("type", string: kind.rawValue)
        json.field("payload", rawJSON: payload)
        return json.finish()
    }
}
