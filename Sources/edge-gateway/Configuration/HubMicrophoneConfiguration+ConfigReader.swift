import Foundation
import Audio
import Dialog

extension HubMicrophoneConfiguration {
    /// `audio.*` (`audio.vad.*` for the voice-activity detector).
    init(_ v: inout ConfigValues) {
        self.init()
        enabled = v.bool("audio.enabled", default: enabled)
        device = v.string("audio.device", default: device)
        playbackDevice = v.string("audio.playbackDevice", default: "").nonEmpty
        let command = v.stringList("audio.replyCommand", default: [])
        replyCommand = command.isEmpty ? nil : command
        // A reply is content from the ML service: one starting with "-" must never be read as an
        // option of the program (`-f/etc/edge-gateway/secrets.env` would have espeak-ng read the
        // secrets aloud). So {text} may open an argument only after "--"; without {text} the reply
        // goes to the program's standard input.
        if let misplaced = command.firstIndex(where: { $0.hasPrefix("{text}") }), !command[..<misplaced].contains("--") {
            v.fail(
                "audio.replyCommand",
                "\"{text}\" would be read as an option when a reply starts with '-': put \"--\" before it "
                    + "([espeak-ng, --stdout, --, \"{text}\"]) or leave {text} out to get the reply on standard input")
        }
        let tts = v.string("audio.tts", default: "")
        if !tts.isEmpty {
            self.tts = WyomingServerAddress(url: tts)
            if self.tts == nil {
                v.fail("audio.tts", "'\(tts)' is not wyoming://host:port (e.g. wyoming://127.0.0.1:10200 for wyoming-piper)")
            } else if replyCommand != nil {
                v.fail("audio.tts", "is set together with audio.replyCommand: the hub speaks through one of them; remove the other")
            } else if !enabled || playbackDevice == nil {
                v.warn("audio.tts", "has no effect without audio.enabled and audio.playbackDevice")
            }
        }
        ttsVoice = v.string("audio.ttsVoice", default: "").nonEmpty
        ttsTimeoutSeconds = v.double("audio.ttsTimeoutSeconds", default: ttsTimeoutSeconds, range: 1...120)
        ttsMaxSeconds = v.double("audio.ttsMaxSeconds", default: ttsMaxSeconds, range: 0.5...600)
        sampleRate = v.int("audio.sampleRate", default: sampleRate, range: 8000...48000)
        if ![8000, 12000, 16000, 24000, 48000].contains(sampleRate) {
            v.fail("audio.sampleRate", "\(sampleRate) is not an Opus rate (8000, 12000, 16000, 24000 or 48000)")
        }
        opusBitrate = v.int("audio.opusBitrate", default: opusBitrate, range: 6000...128_000)
        language = v.string("audio.language", default: language)
        alsaConfigFile = v.string("audio.alsaConfigFile", default: "").nonEmpty
        listenSeconds = v.double("audio.listenSeconds", default: listenSeconds, range: 0.5...60)
        var vad = VADConfiguration(sampleRate: sampleRate)
        vad.thresholdDB = v.double("audio.vad.thresholdDb", default: vad.thresholdDB, range: 1...60)
        vad.minimumLevelDBFS = v.double("audio.vad.minimumLevelDbfs", default: vad.minimumLevelDBFS, range: -100...0)
        vad.minSpeechMs = v.int("audio.vad.minSpeechMs", default: vad.minSpeechMs, range: 20...5000)
        vad.hangoverMs = v.int("audio.vad.hangoverMs", default: vad.hangoverMs, range: 0...10_000)
        vad.preRollMs = v.int("audio.vad.preRollMs", default: vad.preRollMs, range: 0...2000)
        vad.maxSegmentSeconds = v.double("audio.vad.maxSegmentSeconds", default: vad.maxSegmentSeconds, range: 1...300)
        self.vad = vad
        wake = WakeWordConfiguration(&v, microphoneEnabled: enabled)
        if device.isEmpty { v.fail("audio.device", "must name an ALSA PCM (see `arecord -L`)") }
    }
}

extension WakeWordConfiguration {
    /// `audio.wake.*`: the wake-word server in front of the hub microphone.
    init(_ v: inout ConfigValues, microphoneEnabled: Bool) {
        self.init()
        let endpoint = v.string("audio.wake.endpoint", default: "")
        if !endpoint.isEmpty {
            if let (host, port) = Self.parseEndpoint(endpoint) {
                self.host = host
                self.port = port
            } else {
                v.fail("audio.wake.endpoint", "'\(endpoint)' is not wyoming://host:port (e.g. wyoming://127.0.0.1:10400)")
            }
        }
        names = v.stringList("audio.wake.names", default: [])
        if let long = names.first(where: { $0.count > WakeWordListener.maxNameLength }) {
            v.fail("audio.wake.names", "'\(long.prefix(20))…' is longer than \(WakeWordListener.maxNameLength) characters")
        }
        // Empty (the sample file's value): wake with an endpoint, vad without one.
        let modeText = v.string("audio.wake.mode", default: "").trimmingCharacters(in: .whitespaces)
        if modeText.isEmpty {
            mode = endpoint.isEmpty ? .vad : .wake
            v.resolve("audio.wake.mode", to: mode.rawValue, endpoint.isEmpty ? "no audio.wake.endpoint" : "audio.wake.endpoint is set")
        } else if let chosen = WakeMode(rawValue: modeText) {
            mode = chosen
        } else {
            v.fail("audio.wake.mode", "'\(modeText)' is not one of: \(WakeMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        bufferMs = v.int("audio.wake.bufferMs", default: bufferMs, range: 100...10_000)
        if mode != .vad, endpoint.isEmpty {
            v.fail("audio.wake.mode", "'\(mode.rawValue)' needs a wake-word server: set audio.wake.endpoint (wyoming://host:port) or use vad")
        }
        if host != nil, mode == .vad {
            v.warn("audio.wake.endpoint", "audio.wake.mode is vad: the wake-word server is not used")
        }
        if host != nil, !microphoneEnabled {
            v.warn("audio.wake.endpoint", "audio.enabled is off: the wake-word server is not used")
        }
    }
}
