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
    /// Frames one session may send, counted as they arrive (`dialog.maxFramesPerSession`).
    public var maxFramesPerSession = 6000
    /// Audio bytes one session may send, as they arrive (`dialog.maxSessionAudioBytes`).
    public var maxSessionAudioBytes = 4 * 1024 * 1024
    /// Audio of one session converted but not yet taken by its ML stream, the memory a slow
    /// or stalled ML service makes the gateway hold (`dialog.maxBufferedAudioBytes`).
    public var maxBufferedAudioBytes = 1024 * 1024
    /// Whether an audio start's `userId` is checked against the user the device is registered
    /// to: on when registration is on, unless `dialog.trustDeviceUserId` is true.
    public var verifiesUserID = false
    /// What the ML endpoints accept (`ml.codec`).
    public var codec: MLConfiguration.Codec = .opus
    /// Every endpoint that may transcribe is a Wyoming server (which takes PCM): PCM devices' audio
    /// stays PCM even when `codec` is Opus, rather than being encoded only to be decoded again.
    public var keepsDevicePCM = false
    public var unknownUserPolicy: UsersConfiguration.UnknownUserPolicy = .allow

    public init(hubID: String) {
        self.hubID = hubID
    }
}
