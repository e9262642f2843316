/// PCM audio's format, as `audio-start` and `audio-chunk` carry it: samples per second, bytes per sample,
/// channels. The gateway's microphone audio is ``pcm16kMono``.
public struct WyomingAudioFormat: Sendable, Hashable {
    public var rate: Int
    public var width: Int
    public var channels: Int

    public init(rate: Int, width: Int, channels: Int) {
        self.rate = rate
        self.width = width
        self.channels = channels
    }

    public static let pcm16kMono = WyomingAudioFormat(rate: 16_000, width: 2, channels: 1)

    var data: [String: WyomingJSON] { ["rate": .int(rate), "width": .int(width), "channels": .int(channels)] }
}

/// The final transcript of `transcribe`.
public struct WyomingTranscript: Sendable, Hashable {
    public var text: String
    public var language: String?
}

/// An entity of a recognized intent; the value as the server sent it (usually a string).
public struct WyomingEntity: Sendable, Hashable {
    public var name: String
    public var value: WyomingJSON
}

/// The answer of `recognize`.
public enum WyomingRecognition: Sendable, Hashable {
    /// `intent`: the intent's name, its entities and the reply text the server gave (if any).
    case intent(name: String, entities: [WyomingEntity], text: String?)
    /// `not-recognized`, with the server's reply text (if any).
    case notRecognized(text: String?)
}

/// The answer of `handle`.
public enum WyomingHandling: Sendable, Hashable {
    case handled(text: String?)
    case notHandled(text: String?)
}

/// The audio of `synthesize`: PCM in the format its `audio-start` announced.
public struct WyomingSpeech: Sendable, Hashable {
    public var format: WyomingAudioFormat
    public var pcm: [UInt8]
}

/// What a wake-word server says while the audio streams.
public enum WyomingWakeEvent: Sendable, Hashable {
    /// `detection`: the model's name and the audio time (ms) it was heard at, as far as the server says.
    case detection(name: String?, timestamp: Int?)
    /// `not-detected`: the audio ended without the wake word.
    case notDetected
}
