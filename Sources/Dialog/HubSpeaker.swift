import Audio
import Dispatch
import Foundation
import GatewayCore
import Logging
import Metrics
import Synchronization

/// Plays what the hub's own dialogs end with on `audio.playbackDevice`. The ML contract carries
/// reply text, not audio (CONTRACTS.md §3): with `audio.replyCommand` (a text-to-speech program
/// that writes a 16-bit WAV to stdout, e.g. `espeak-ng --stdout {text}`) the hub speaks the
/// answer's `replyText`; otherwise, or when the program fails, it plays an ``Earcon`` — two rising
/// notes for an answer, a low one for an error — so someone at the hub knows they were heard.
///
/// It listens to dialog answers as a ``LiveSink`` (it never waits on the dialog), opens the PCM
/// for each chime and closes it after, on a queue of its own (ALSA writes block); a chime that
/// comes while one plays is skipped.
public final class HubSpeaker: LiveSink, Sendable {
    private let device: String
    private let hubID: DeviceID
    private let sampleRate: Int
    private let alsaConfiguration: String?
    private let replyCommand: [String]?
    private let logger: Logger
    private let queue = DispatchQueue(label: "edge-gateway.audio.playback")
    private let playing = Atomic<Bool>(false)
    private let played = Counter(label: "gateway.audio.playback.chimes.total")
    private let spoken = Counter(label: "gateway.audio.playback.replies.total")
    private let errors = Counter(label: "gateway.audio.playback.errors.total")

    /// The longest reply text handed to `replyCommand`.
    static let maxReplyCharacters = 1000
    /// How long `replyCommand` may take before it is killed and the chime plays instead.
    static let commandTimeout: TimeInterval = 10

    /// - Parameter replyCommand: argv of a text-to-speech program; `{text}` in an argument is
    ///   replaced by the reply (no shell is involved).
    public init(
        device: String, hubID: DeviceID, sampleRate: Int, alsaConfiguration: String?, replyCommand: [String]? = nil,
        logger: Logger
    ) {
        self.replyCommand = replyCommand?.isEmpty == true ? nil : replyCommand
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
            do {
                try output(earcon.samples(sampleRate: sampleRate), sampleRate: sampleRate, channels: 1)
                played.increment()
            } catch {
                errors.increment()
                logger.warning("cannot play on the playback device", metadata: ["audio.playback_device": "\(device)", "error": "\(error)"])
            }
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
