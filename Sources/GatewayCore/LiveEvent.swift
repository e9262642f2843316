import Foundation

/// Something worth showing an operator as it happens (the admin API's `/live` stream): the
/// answers devices get, sessions starting, and, when asked for, their audio. Producers hand these
/// to a ``LiveSink`` and never wait on it.
public enum LiveEvent: Sendable {
    /// A message sent to a device on `device/{id}/response` (`TRANSCRIPT_PARTIAL`, `DIALOG_RESPONSE`, `ERROR`).
    case response(DeviceResponse)
    /// A voice session was admitted.
    case sessionStarted(device: DeviceID, session: UUID, codec: String, sampleRate: Int)
    /// One audio frame of a session, as the device sent it.
    case audio(device: DeviceID, session: UUID, sequence: UInt32, payload: [UInt8])
}

/// Where ``LiveEvent``s go. Implementations return at once (they queue or drop).
public protocol LiveSink: Sendable {
    func publish(_ event: LiveEvent)
    /// Whether anyone listens to audio now; producers skip copying frames otherwise.
    var wantsAudio: Bool { get }
}
