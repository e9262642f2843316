import Audio
import Foundation
import GatewayCore
import MLLink
import Synchronization

/// One voice dialog: `(device, session id)` from its start message until the device has its
/// answer (or an `ERROR`). Frames are put back in order, converted to what the ML endpoints
/// accept, and appended to ``audio``, which the transcription stream reads.
final class DialogSession: Sendable {
    let device: DeviceID
    let start: AudioMessage.AudioStart
    let audio = ReplayableAudio()
    /// What the ML service is told the stream is.
    let streamConfiguration: AudioStreamConfiguration
    let startedAt = ContinuousClock.now
    let startedAtWall = Date()
    let outputCodec: MLConfiguration.Codec
    /// `dialog.maxFramesPerSession`, `dialog.maxSessionAudioBytes`, `dialog.maxBufferedAudioBytes`.
    let maxFrames: Int
    let maxAudioBytes: Int
    let maxBufferedBytes: Int

    struct State {
        var reorder: FrameReorderBuffer<[UInt8]>
        var converter: AudioConverter
        var lastActivity = ContinuousClock.now
        var endReceivedAt: ContinuousClock.Instant?
        var frames = 0
        var audioBytes = 0
        var convertErrors = 0
        /// Set once the device has been answered (response or error); nothing else is sent after.
        var concluded = false
        var abortReason: (code: DeviceResponse.ErrorCode, message: String)?
    }

    private let state: Mutex<State>

    var key: SessionKey { SessionKey(device: device, session: start.session) }

    /// - Throws: ``DialogError`` (`unsupported_audio`) when the audio cannot be converted to `ml.codec`.
    init(device: DeviceID, start: AudioMessage.AudioStart, configuration: DialogConfiguration) throws(DialogError) {
        let output: MLConfiguration.Codec = start.codec == .pcm && configuration.keepsDevicePCM ? .pcm : configuration.codec
        let converter = try AudioConverter(input: start, output: output)
        self.device = device
        self.start = start
        outputCodec = converter.outputCodec
        maxFrames = configuration.maxFramesPerSession
        maxAudioBytes = configuration.maxSessionAudioBytes
        maxBufferedBytes = configuration.maxBufferedAudioBytes
        streamConfiguration = AudioStreamConfiguration(
            codec: converter.outputCodec.rawValue, sampleRate: Int32(start.sampleRate), channels: Int32(start.channels),
            language: start.language, deviceID: device.rawValue, sessionID: start.session.uuidString.lowercased())
        state = Mutex(State(reorder: FrameReorderBuffer(window: configuration.reorderWindow), converter: converter))
    }

    /// What one frame did.
    struct FrameOutcome {
        var late = 0
        var gaps = 0
        var convertErrors = 0
        /// The budget this frame broke, if it broke one: the session is over.
        var limit: String?
    }

    /// Takes one frame: reorders, converts, and hands what is ready to the stream. Work per call
    /// is bounded by the reorder window whatever the sequence number says, and a session that
    /// breaks one of its budgets stops here: its audio is let go and its watcher answers the
    /// device with `ERROR session_limit`.
    func accept(sequence: UInt32, payload: [UInt8]) -> FrameOutcome {
        let taken = state.withLock { state -> (chunks: [[UInt8]], outcome: FrameOutcome) in
            state.lastActivity = .now
            // A session stopped at a budget is over: its later frames are dropped, not late.
            guard state.abortReason == nil else { return ([], FrameOutcome()) }
            guard state.endReceivedAt == nil else { return ([], FrameOutcome(late: 1)) }
            if state.frames >= maxFrames {
                return ([], FrameOutcome(limit: "the session sent more than \(maxFrames) frames (dialog.maxFramesPerSession)"))
            }
            if state.audioBytes + payload.count > maxAudioBytes {
                return ([], FrameOutcome(limit: "the session sent more than \(maxAudioBytes) bytes of audio (dialog.maxSessionAudioBytes)"))
            }
            state.frames += 1
            state.audioBytes += payload.count
            let late = state.reorder.late, gaps = state.reorder.gaps, errors = state.convertErrors
            var chunks: [[UInt8]] = []
            for frame in state.reorder.accept(sequence: sequence, payload) {
                do {
                    chunks += try state.converter.convert(frame)
                } catch {
                    state.convertErrors += 1
                }
            }
            return (chunks, FrameOutcome(
                late: state.reorder.late - late, gaps: state.reorder.gaps - gaps, convertErrors: state.convertErrors - errors))
        }
        var outcome = taken.outcome
        for chunk in taken.chunks { audio.append(chunk) }
        if outcome.limit == nil, audio.unreadBytes > maxBufferedBytes {
            outcome.limit = "the ML service fell more than \(maxBufferedBytes) bytes of audio behind (dialog.maxBufferedAudioBytes)"
        }
        if let limit = outcome.limit {
            abort(.sessionLimit, limit)
            audio.fail(MLError(.unavailable, limit))
        }
        return outcome
    }

    /// The device's end message: flushes the reorder buffer and ends the audio.
    func end(lastSequence: UInt32) -> (gaps: Int, convertErrors: Int) {
        let result = state.withLock { state -> (chunks: [[UInt8]], gaps: Int, errors: Int)? in
            guard state.endReceivedAt == nil else { return nil }
            state.lastActivity = .now
            state.endReceivedAt = .now
            let gaps = state.reorder.gaps, errors = state.convertErrors
            var chunks: [[UInt8]] = []
            for frame in state.reorder.finish(lastSequence: lastSequence) {
                do {
                    chunks += try state.converter.convert(frame)
                } catch {
                    state.convertErrors += 1
                }
            }
            chunks += state.converter.flush()
            return (chunks, state.reorder.gaps - gaps, state.convertErrors - errors)
        }
        guard let result else { return (0, 0) }
        for chunk in result.chunks { audio.append(chunk) }
        audio.finish()
        return (result.gaps, result.errors)
    }

    /// Something happened (a result from the service): the idle clock starts again.
    func touch() {
        state.withLock { $0.lastActivity = .now }
    }

    /// Claims the right to answer the device; true once only.
    func conclude() -> Bool {
        state.withLock { state in
            guard !state.concluded else { return false }
            state.concluded = true
            return true
        }
    }

    var isConcluded: Bool { state.withLock { $0.concluded } }

    /// Asks the session to stop (the gateway is shutting down); its watcher answers the device.
    func abort(_ code: DeviceResponse.ErrorCode, _ message: String) {
        state.withLock { state in
            if state.abortReason == nil { state.abortReason = (code, message) }
        }
    }

    /// Why the session must stop now, if it must: aborted, idle past `timeout`, or older than `maxDuration`.
    func expiry(timeout: Duration, maxDuration: Duration, now: ContinuousClock.Instant = .now) -> (code: DeviceResponse.ErrorCode, message: String)? {
        state.withLock { state in
            if let reason = state.abortReason { return reason }
            if state.lastActivity.duration(to: now) > timeout {
                let waitingFor = state.endReceivedAt == nil ? "audio from the device" : "the ML service's transcript"
                return (.sessionTimeout, "no activity for \(timeout) while waiting for \(waitingFor)")
            }
            if startedAt.duration(to: now) > maxDuration {
                return (.sessionTooLong, "the session ran longer than \(maxDuration)")
            }
            return nil
        }
    }

    var endReceivedAt: ContinuousClock.Instant? { state.withLock { $0.endReceivedAt } }

    /// Why the session was stopped from outside its conversation (a budget, shutdown), if it was.
    var abortReason: (code: DeviceResponse.ErrorCode, message: String)? { state.withLock { $0.abortReason } }

    var statistics: (frames: Int, audioBytes: Int, gaps: Int, late: Int) {
        state.withLock { ($0.frames, $0.audioBytes, $0.reorder.gaps, $0.reorder.late) }
    }
}

/// Identifies a session: its device and the session UUID from the start message.
struct SessionKey: Hashable, Sendable {
    var device: DeviceID
    var session: UUID
}

/// Turns what the device sends into what the ML endpoints accept (`ml.codec`): Opus packets are
/// decoded for PCM endpoints, PCM is encoded in 20 ms Opus packets for Opus endpoints, and
/// anything else passes through.
struct AudioConverter {
    enum Mode {
        case passThrough
        case decode(OpusDecoder)
        case encode(OpusEncoder, pending: [Int16], frameSamples: Int)
    }

    var mode: Mode
    let outputCodec: MLConfiguration.Codec

    /// Sample rates libopus works at.
    static let opusRates: Set<Int> = [8000, 12000, 16000, 24000, 48000]

    init(input: AudioMessage.AudioStart, output: MLConfiguration.Codec) throws(DialogError) {
        switch (input.codec, output) {
        case (.opus, .opus), (.pcm, .pcm):
            mode = .passThrough
            outputCodec = output
            if input.codec == .opus, !Self.opusRates.contains(input.sampleRate) {
                throw DialogError(.unsupportedAudio, "Opus does not run at \(input.sampleRate) Hz")
            }
        case (.opus, .pcm):
            do {
                mode = .decode(try OpusDecoder(sampleRate: Int32(input.sampleRate), channels: Int32(input.channels)))
            } catch {
                throw DialogError(.unsupportedAudio, "cannot decode Opus at \(input.sampleRate) Hz, \(input.channels) channels: \(error)")
            }
            outputCodec = .pcm
        case (.pcm, .opus):
            guard Self.opusRates.contains(input.sampleRate) else {
                throw DialogError(.unsupportedAudio, "PCM at \(input.sampleRate) Hz cannot be encoded as Opus for the ML service")
            }
            do {
                let encoder = try OpusEncoder(sampleRate: Int32(input.sampleRate), channels: Int32(input.channels))
                mode = .encode(encoder, pending: [], frameSamples: encoder.frameSize(milliseconds: 20) * input.channels)
            } catch {
                throw DialogError(.unsupportedAudio, "cannot encode Opus at \(input.sampleRate) Hz: \(error)")
            }
            outputCodec = .opus
        }
    }

    mutating func convert(_ frame: [UInt8]) throws(OpusError) -> [[UInt8]] {
        switch mode {
        case .passThrough:
            return [frame]
        case .decode(let decoder):
            return [try decoder.decode(frame)]
        case .encode(let encoder, var pending, let frameSamples):
            pending.reserveCapacity(pending.count + frame.count / 2)
            var index = 0
            while index + 1 < frame.count {
                pending.append(Int16(bitPattern: UInt16(frame[index]) | UInt16(frame[index + 1]) << 8))
                index += 2
            }
            var packets: [[UInt8]] = []
            var offset = 0
            defer { mode = .encode(encoder, pending: Array(pending[offset...]), frameSamples: frameSamples) }
            while pending.count - offset >= frameSamples {
                packets.append(try encoder.encode(Array(pending[offset..<offset + frameSamples])))
                offset += frameSamples
            }
            return packets
        }
    }

    /// The last partial Opus frame, padded with silence.
    mutating func flush() -> [[UInt8]] {
        guard case .encode(let encoder, let pending, let frameSamples) = mode, !pending.isEmpty else { return [] }
        mode = .encode(encoder, pending: [], frameSamples: frameSamples)
        let padded = pending + [Int16](repeating: 0, count: frameSamples - pending.count)
        return (try? encoder.encode(padded)).map { [$0] } ?? []
    }
}

/// Why a session could not start or go on; becomes an `ERROR` response.
struct DialogError: Error {
    var code: DeviceResponse.ErrorCode
    var message: String

    init(_ code: DeviceResponse.ErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}
