import Audio

/// Settings of the hub's own microphone (`audio.*`). Defaults match `config/gateway.yaml`.
public struct HubMicrophoneConfiguration: Sendable, Equatable {
    /// Capture at all (`audio.enabled`).
    public var enabled = false
    /// The ALSA capture PCM (`audio.device`): `default`, `hw:1,0`, `plughw:1,0`, or a PCM named in
    /// `audio.alsaConfigFile`. `arecord -L` lists what the hub knows.
    public var device = "default"
    /// A playback PCM for replies (`audio.playbackDevice`); nil: none.
    public var playbackDevice: String?
    /// A text-to-speech program that writes a 16-bit WAV to stdout, `{text}` standing for the reply
    /// (`audio.replyCommand`, e.g. `[espeak-ng, --stdout, "{text}"]`); nil: a chime instead.
    public var replyCommand: [String]?
    /// Capture rate (`audio.sampleRate`): 8000, 12000, 16000, 24000 or 48000 (Opus rates).
    public var sampleRate = 16000
    /// Opus bitrate of the segments sent to the ML service (`audio.opusBitrate`).
    public var opusBitrate = 24000
    /// The language the ML service is told (`audio.language`).
    public var language = "en-US"
    /// Extra ALSA configuration loaded in-process before opening the PCM (`audio.alsaConfigFile`),
    /// e.g. a `pcm.mic { ... }` definition; nil: the system's configuration only.
    public var alsaConfigFile: String?
    /// Voice-activity detection (`audio.vad.*`).
    public var vad = VADConfiguration()
    /// How long a push-to-talk request (`hub/{hubId}/listen`) listens when it names no length
    /// (`audio.listenSeconds`).
    public var listenSeconds = 5.0
    /// A wake-word server in front of the microphone (`audio.wake.*`).
    public var wake = WakeWordConfiguration()

    public init() {}
}
