import MLLink
import Users

/// Device voice dialogs (`dialog.*`, with `ml.codec` and `users.unknownUserPolicy`).
public struct DialogConfiguration: Sendable, Equatable {
    public var hubID: String
    /// Send `TRANSCRIPT_PARTIAL` for the service's partial results (`dialog.partials`).
    public var partials = true
    /// A session with no audio from the device and no result from the service for this long is
    /// closed with an `ERROR` (`dialog.sessionTimeoutMs`).
    public var sessionTimeout: Duration = .seconds(10)
    /// Longest a session may last from its start (`dialog.maxSessionSeconds`).
    public var maxSessionDuration: Duration = .seconds(60)
    /// Sessions at once, over all devices (`dialog.maxSessions`).
    public var maxSessions = 32
    /// Sessions at once per device (`dialog.maxSessionsPerDevice`).
    public var maxSessionsPerDevice = 1
    /// Frames held to put late ones back in order (`dialog.reorderWindow`).
    public var reorderWindow = 8
    /// Largest audio message accepted (`dialog.maxAudioMessageBytes`).
    public var maxAudioMessageBytes = 16 * 1024
    /// Attempts to publish a response before it is counted as lost (`dialog.responseAttempts`).
    public var responseAttempts = 3
    /// What the ML endpoints accept (`ml.codec`).
    public var codec: MLConfiguration.Codec = .opus
    public var unknownUserPolicy: UsersConfiguration.UnknownUserPolicy = .allow

    public init(hubID: String) {
        self.hubID = hubID
    }
}
