import Dialog
import MLLink
import Users

extension DialogConfiguration {
    /// `dialog.*` (the codec and the unknown-user policy come from `ml.*` and `users.*`).
    init(_ v: inout ConfigValues, hubID: String, ml: MLConfiguration, users: UsersConfiguration, registrationEnabled: Bool) {
        self.init(hubID: hubID)
        codec = ml.codec
        keepsDevicePCM = ml.transcribesOnlyOverWyoming
        unknownUserPolicy = users.unknownUserPolicy
        partials = v.bool("dialog.partials", default: partials)
        sessionTimeout = .milliseconds(v.int("dialog.sessionTimeoutMs", default: 10_000, range: 100...3_600_000))
        maxSessionDuration = .seconds(v.int("dialog.maxSessionSeconds", default: 60, range: 1...86400))
        maxSessions = v.int("dialog.maxSessions", default: maxSessions, range: 1...100_000)
        maxSessionsPerDevice = v.int("dialog.maxSessionsPerDevice", default: maxSessionsPerDevice, range: 1...1000)
        reorderWindow = v.int("dialog.reorderWindow", default: reorderWindow, range: 1...1000)
        maxAudioMessageBytes = v.int("dialog.maxAudioMessageBytes", default: maxAudioMessageBytes, range: 64...(16 * 1024 * 1024))
        responseAttempts = v.int("dialog.responseAttempts", default: responseAttempts, range: 1...100)
        maxFramesPerSession = v.int("dialog.maxFramesPerSession", default: maxFramesPerSession, range: 1...10_000_000)
        maxSessionAudioBytes = v.int("dialog.maxSessionAudioBytes", default: maxSessionAudioBytes, range: 1024...(1024 * 1024 * 1024))
        maxBufferedAudioBytes = v.int("dialog.maxBufferedAudioBytes", default: maxBufferedAudioBytes, range: 1024...(1024 * 1024 * 1024))
        let trustDeviceUserID = v.bool("dialog.trustDeviceUserId", default: false)
        verifiesUserID = registrationEnabled && !trustDeviceUserID
        if trustDeviceUserID, !registrationEnabled {
            v.warn("dialog.trustDeviceUserId", "has no effect while registration.enabled is off (without a registry no user is checked)")
        }
    }
}
