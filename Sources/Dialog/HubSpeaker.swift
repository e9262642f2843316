import Audio
import Dispatch
import Foundation
import GatewayCore
import Logging
import Metrics
import Synchronization
import Wyoming

/// Plays what the hub's own dialogs end with on `audio.playbackDevice`. The ML contract carries
/// reply text, not audio (CONTRACTS.md §3): with `audio.replyCommand` (a text-to-speech program
/// that writes a 16-bit WAV to stdout, e.g. `espeak-ng --stdout {text}`) the hub speaks the
/// answer's `replyText`; with `audio.tts` (a Wyoming text-to-speech server, CONTRACTS.md §8
/// `synthesize`) the server speaks it, its audio converted to the playback rate, mono; otherwise, or
/// when the program or the server fails, it plays an ``Earcon`` — two rising notes for an answer, a
/// low one for an error — so someone at the hub knows they were heard.
///
/// It listens to dialog answers as a ``LiveSink`` (it never waits on the dialog), opens the PCM
/// for each chime and closes it after, on a queue of its own (ALSA writes block); the Wyoming call
/// runs in a task and hands its audio to that queue. One reply at a time: a reply or chime that
/// comes while one is spoken (or synthesized) is skipped.
public final class HubSpeaker: LiveSink, Sendable {
    private let device: String
    private let hubID: DeviceID
    private let sampleRate: Int
    private let alsaConfiguration: String?
    private let replyCommand: [String]?
    private let tts: Speech?
    private let logger: Logger
    private let queue = DispatchQueue(label: "edge-gateway.audio.playback")
    private let playing = Atomic<Bool>(false)
    private let played = Counter(label: "gateway.audio.playback.chimes.total")
    private let spoken = Counter(label: "gateway.audio.playback.replies.total")
    private let errors = Counter(label: "gateway.audio.playback.errors.total")
    private let ttsFailures: [TTSFailure: Counter] = Dictionary(
        uniqueKeysWithValues: TTSFailure.allCases.map {
            ($0, Counter(label: "gateway.audio.tts.failures.total", dimensions: [("reason", $0.rawValue)]))
        })

    /// The longest reply text handed to `replyCommand`.
    static let maxReplyCharacters = 1000
    /// How long `replyCommand` may take before it is killed and the chime plays instead.
    static let commandTimeout: TimeInterval = 10

    /// - Parameters:
    ///   - replyCommand: argv of a text-to-speech program; `{text}` in an argument is replaced by the
    ///     reply (no shell is involved).
    ///   - tts: a Wyoming text-to-speech server that speaks the replies instead (the configuration
    ///     never sets both).
    public init(
        device: String, hubID: DeviceID, sampleRate: Int, alsaConfiguration: String?, replyCommand: [String]? = nil,
        tts: Speech? = nil, logger: Logger
    ) {
        self.replyCommand = replyCommand?.isEmpty == true ? nil : replyCommand
        self.tts = tts
        self.device = device
        self.hubID = hubID
        self.sampleRate = sampleRate
        self.alsaConfiguration = alsaConfiguration
        self.logger = logger
    }

    public var wantsAudio: Bool { false }

    public func publish(_ event: LiveEvent) {
        guard case .response(let response) = event, response.device == hubID else { return }
        switch response.kind {
        case .dialogResponse:
            let payload = (try? JSONSerialization.jsonObject(with: Data(response.payload))) as? [String: Any]
            play(.answered, reply: (payload?["replyText"] as? String).map { String($0.prefix(Self.maxReplyCharacters)) })
        case .error: play(.failed, reply: nil)
        case .transcriptPartial, .registrationResult: return
        }
    }

    private func play(_ earcon: Earcon, reply: String?) {
        guard !playing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        if let reply, !reply.isEmpty, let tts {
            // The call is async (NIO); the audio goes to the playback queue like everything else.
            Task { [self] in
                let speech: Result<WyomingSpeech, any Error>
                do {
                    speech = .success(try await tts.client.synthesize(text: reply, voice: tts.voice))
                } catch {
                    speech = .failure(error)
                }
                queue.async { [self] in
                    defer { playing.store(false, ordering: .releasing) }
                    do throws(TTSError) {
                        try speak(speech.mapError { TTSError.synthesis($0) }.get(), limits: tts)
                        spoken.increment()
                        return
                    } catch {
                        errors.increment()
                        ttsFailures[error.reason]?.increment()
                        logger.warning(
                            "cannot speak the reply through the TTS server; playing the chime instead",
                            metadata: ["audio.tts": "\(tts.server)", "reason": "\(error.reason.rawValue)", "error": "\(error)"])
                    }
                    chime(earcon)
                }
            }
            return
        }
        queue.async { [self] in
            defer { playing.store(false, ordering: .releasing) }
            if let reply, !reply.isEmpty, let command = replyCommand {
                do {
                    let wav = try synthesize(reply, with: command)
                    try output(wav.samples, sampleRate: wav.sampleRate, channels: wav.channels)
                    spoken.increment()
                    return
                } catch {
                    errors.increment()
                    logger.warning(
                        "cannot speak the reply; playing the chime instead",
                        metadata: ["audio.reply_command": "\(command.first ?? "")", "error": "\(error)"])
                }
            }
            chime(earcon)
        }
    }

    /// On the playback queue.
    private func chime(_ earcon: Earcon) {
        do {
            try output(earcon.samples(sampleRate: sampleRate), sampleRate: sampleRate, channels: 1)
            played.increment()
        } catch {
            errors.increment()
            logger.warning("cannot play on the playback device", metadata: ["audio.playback_device": "\(device)", "error": "\(error)"])
        }
    }

    /// Plays a TTS server's audio at the playback rate, mono. On the playback queue (the conversion is
    /// CPU work, the writes block).
    private func speak(_ speech: WyomingSpeech, limits: Speech) throws(TTSError) {
        let format = speech.format
        let samples: [Int16]
        do throws(PCMResampler.FormatError) {
            samples = try PCMResampler.samples(littleEndian: speech.pcm, width: format.width)
        } catch {
            throw .unsupportedFormat(error.description)
        }
        let frames = samples.count / format.channels
        guard frames > 0 else { throw .noAudio }
        let seconds = Double(frames) / Double(format.rate)
        guard seconds <= limits.maxSeconds else { throw .tooLong(seconds: seconds, limit: limits.maxSeconds) }
        let converted = PCMResampler(from: format.rate, to: sampleRate, channels: format.channels).convert(samples)
        do throws(AudioError) {
            try output(converted, sampleRate: sampleRate, channels: 1)
        } catch {
            throw .playback(error)
        }
    }

    private func output(_ samples: [Int16], sampleRate: Int, channels: Int) throws(AudioError) {
        let playback = try ALSAPlayback.open(device: device, sampleRate: sampleRate, channels: channels, configuration: alsaConfiguration)
        defer { playback.close() }
        try playback.write(samples)
        try playback.drain()
    }

    struct SpeechError: Error, CustomStringConvertible {
        var description: String
    }

    /// A Wyoming text-to-speech server and what one reply may cost (`audio.tts`, `audio.ttsVoice`,
    /// `audio.ttsTimeoutSeconds`, `audio.ttsMaxSeconds`).
    public struct Speech: Sendable {
        public let server: WyomingServerAddress
        public let voice: String?
        /// The longest reply played, in seconds of audio.
        public let maxSeconds: Double
        let client: WyomingClient

        /// The client's deadline is `timeoutSeconds` for the whole call (connect included). It holds at most
        /// `maxSeconds` of 48 kHz stereo 16-bit audio (192,000 bytes a second) while the reply arrives; a
        /// longer reply at its own rate is refused after it arrived.
        public init(server: WyomingServerAddress, voice: String?, timeoutSeconds: Double, maxSeconds: Double) {
            self.server = server
            self.voice = voice
            self.maxSeconds = maxSeconds
            let timeout = Duration.milliseconds(Int64(timeoutSeconds * 1000))
            self.client = WyomingClient(
                host: server.host, port: server.port,
                limits: WyomingLimits(maxAudioBytes: Int(maxSeconds * 192_000)),
                timeouts: WyomingTimeouts(connect: min(.seconds(2), timeout), call: timeout))
        }
    }

    /// Why a reply was not spoken through the TTS server: the `reason` of `gateway_audio_tts_failures_total`.
    enum TTSFailure: String, CaseIterable {
        /// The server could not be reached (connect refused or timed out).
        case unreachable
        /// No (complete) answer within `audio.ttsTimeoutSeconds`: a silent or dripping server.
        case timeout
        /// The server closed the connection before the end of the audio.
        case closed
        /// The server broke the protocol (header, lengths, data, events) or answered with `error`.
        case `protocol`
        /// More audio than `audio.ttsMaxSeconds`.
        case tooLong = "too_long"
        /// Audio other than 16-bit PCM.
        case unsupportedFormat = "unsupported_format"
        /// `audio-stop` without a sample.
        case noAudio = "no_audio"
        /// The playback device failed while the reply played.
        case playback
    }

    enum TTSError: Error, CustomStringConvertible {
        case synthesis(any Error)
        case unsupportedFormat(String)
        case noAudio
        case tooLong(seconds: Double, limit: Double)
        case playback(AudioError)

        var reason: TTSFailure {
            switch self {
            case .synthesis(let error):
                guard let error = error as? WyomingError else { return .closed }
                switch error.code {
                case .connectFailed: return .unreachable
                case .deadlineExceeded: return .timeout
                case .connectionClosed, .io: return .closed
                case .limitExceeded: return .tooLong
                case .headerTooLong, .invalidHeader, .invalidLength, .invalidData, .unexpectedEvent, .serverError, .invalidEvent:
                    return .protocol
                }
            case .unsupportedFormat: return .unsupportedFormat
            case .noAudio: return .noAudio
            case .tooLong: return .tooLong
            case .playback: return .playback
            }
        }

        var description: String {
            switch self {
            case .synthesis(let error as WyomingError) where error.code == .limitExceeded: "\(error) (audio.ttsMaxSeconds)"
            case .synthesis(let error): "\(error)"
            case .unsupportedFormat(let message): message
            case .noAudio: "the server's audio has no samples"
            case .tooLong(let seconds, let limit):
                "the spoken reply is \(Int(seconds.rounded())) s long, over audio.ttsMaxSeconds (\(limit))"
            case .playback(let error): "\(error)"
            }
        }
    }

    /// Runs `command` with the reply in place of `{text}` (only ever after a `--` argument: the
    /// configuration refuses it elsewhere) or, when no argument has `{text}`, on its standard
    /// input, and reads the WAV it writes to stdout.
    private func synthesize(_ text: String, with command: [String]) throws -> WAVFile {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0].hasPrefix("/") ? command[0] : "/usr/bin/env")
        let onStandardInput = !command.contains { $0.contains("{text}") }
        let arguments = command.map { $0.replacingOccurrences(of: "{text}", with: text) }
        process.arguments = command[0].hasPrefix("/") ? Array(arguments.dropFirst()) : arguments
        let stdout = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        process.standardInput = onStandardInput ? stdin : FileHandle.nullDevice
        try process.run()
        if onStandardInput {
            // At most 1,000 characters: far below a pipe's buffer, so this never waits on the program.
            try? stdin.fileHandleForWriting.write(contentsOf: Data((text + "\n").utf8))
        }
        try? stdin.fileHandleForWriting.close()
        let deadline = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.commandTimeout, execute: deadline)
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        deadline.cancel()
        while process.isRunning { usleep(1000) }
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            throw SpeechError(description: "\(command[0]) ended with status \(process.terminationStatus)")
        }
        guard let wav = WAVFile.parse(Array(data)), !wav.samples.isEmpty else {
            throw SpeechError(description: "\(command[0]) did not write a 16-bit PCM WAV to stdout (\(data.count) bytes)")
        }
        return wav
    }
}

/// Hands every event to several sinks (the live stream and the hub's speaker).
public struct LiveFanout: LiveSink {
    public let sinks: [any LiveSink]

    public init(_ sinks: [any LiveSink]) {
        self.sinks = sinks
    }

    public var wantsAudio: Bool { sinks.contains { $0.wantsAudio } }

    public func publish(_ event: LiveEvent) {
        for sink in sinks { sink.publish(event) }
    }
}
