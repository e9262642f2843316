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
    /// A Wyoming text-to-speech server that speaks the replies (`audio.tts`, `wyoming://host:port`); nil:
    /// `replyCommand` or the chime. Never set together with `replyCommand` (the configuration refuses it).
    public var tts: WyomingServerAddress?
    /// The voice asked of the TTS server (`audio.ttsVoice`); nil: the server's default voice.
    public var ttsVoice: String?
    /// How long the TTS server may take for one reply before the chime plays instead (`audio.ttsTimeoutSeconds`).
    public var ttsTimeoutSeconds = 10.0
    /// The longest spoken reply taken from the TTS server, in seconds of audio (`audio.ttsMaxSeconds`).
    public var ttsMaxSeconds = 60.0
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

/// Where a Wyoming server of the hub microphone listens (`audio.tts`, `audio.wake.endpoint`: `wyoming://host:port`).
public struct WyomingServerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `wyoming://host:port` (an IPv6 host in brackets); nil for anything else.
    public init?(url: String) {
        let prefix = "wyoming://"
        guard url.hasPrefix(prefix) else { return nil }
        let address = url.dropFirst(prefix.count)
        let host: Substring
        let port: Substring
        if address.hasPrefix("[") {
            guard let close = address.firstIndex(of: "]"), address[address.index(after: close)...].hasPrefix(":") else { return nil }
            host = address[address.index(after: address.startIndex)..<close]
            port = address[address.index(close, offsetBy: 2)...]
            guard host.contains(":"), host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
        } else {
            guard let colon = address.lastIndex(of: ":") else { return nil }
            host = address[..<colon]
            port = address[address.index(after: colon)...]
            guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }) else { return nil }
        }
        guard !host.isEmpty, !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }),
            let number = Int(port), (1...65535).contains(number)
        else { return nil }
        self.init(host: String(host), port: number)
    }

    public var description: String { host.contains(":") ? "wyoming://[\(host)]:\(port)" : "wyoming://\(host):\(port)" }
}
