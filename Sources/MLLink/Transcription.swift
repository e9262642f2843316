/// How an audio stream is encoded and whose it is (CONTRACTS.md §3, `AudioConfig`).
public struct AudioStreamConfiguration: Sendable, Equatable {
    /// `opus` (one packet per chunk) or `pcm_s16le`.
    public var codec: String
    public var sampleRate: Int32
    public var channels: Int32
    public var language: String
    public var deviceID: String
    public var sessionID: String

    public init(codec: String, sampleRate: Int32, channels: Int32, language: String, deviceID: String, sessionID: String) {
        self.codec = codec
        self.sampleRate = sampleRate
        self.channels = channels
        self.language = language
        self.deviceID = deviceID
        self.sessionID = sessionID
    }
}

/// One result of `TranscribeStream`: partial while the audio goes on, final at its end.
public struct Transcription: Sendable, Equatable {
    public var text: String
    public var isFinal: Bool
    public var confidence: Float

    public init(text: String, isFinal: Bool, confidence: Float) {
        self.text = text
        self.isFinal = isFinal
        self.confidence = confidence
    }
}
