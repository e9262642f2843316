import COpus

/// An error from libopus, with its code and libopus's own text for it.
public struct OpusError: Error, CustomStringConvertible, Equatable {
    public var code: Int32

    public init(code: Int32) {
        self.code = code
    }

    public var description: String { "opus error \(code): \(String(cString: opus_strerror(code)))" }
}

/// Decodes Opus packets to 16-bit PCM (libopus). One decoder per stream: Opus is stateful.
public final class OpusDecoder {
    public let sampleRate: Int32
    public let channels: Int32
    private let decoder: OpaquePointer
    /// Room for the longest packet Opus allows (120 ms).
    private var buffer: [Int16]

    /// - Parameters:
    ///   - sampleRate: 8000, 12000, 16000, 24000 or 48000.
    ///   - channels: 1 or 2.
    public init(sampleRate: Int32, channels: Int32) throws(OpusError) {
        var error: Int32 = 0
        guard let decoder = opus_decoder_create(sampleRate, channels, &error), error == OPUS_OK else {
            throw OpusError(code: error == OPUS_OK ? OPUS_ALLOC_FAIL : error)
        }
        self.decoder = decoder
        self.sampleRate = sampleRate
        self.channels = channels
        buffer = Array(repeating: 0, count: Int(sampleRate) * 120 / 1000 * Int(channels))
    }

    deinit {
        opus_decoder_destroy(decoder)
    }

    /// Decodes one packet to interleaved little-endian S16 bytes (`pcm_s16le`).
    public func decode(_ packet: [UInt8]) throws(OpusError) -> [UInt8] {
        guard !packet.isEmpty else { throw OpusError(code: OPUS_INVALID_PACKET) }
        let frameCapacity = Int32(buffer.count) / channels
        let samples = packet.withUnsafeBufferPointer { input in
            buffer.withUnsafeMutableBufferPointer { output in
                opus_decode(decoder, input.baseAddress, Int32(input.count), output.baseAddress!, frameCapacity, 0)
            }
        }
        guard samples >= 0 else { throw OpusError(code: samples) }
        return Self.littleEndianBytes(buffer[0..<Int(samples * channels)])
    }

    /// Samples concealed for one lost packet of `frameMilliseconds` (packet loss concealment), as bytes.
    public func conceal(frameMilliseconds: Int = 20) throws(OpusError) -> [UInt8] {
        let frames = Int32(Int(sampleRate) * frameMilliseconds / 1000)
        let samples = buffer.withUnsafeMutableBufferPointer { output in
            opus_decode(decoder, nil, 0, output.baseAddress!, min(frames, Int32(output.count) / channels), 0)
        }
        guard samples >= 0 else { throw OpusError(code: samples) }
        return Self.littleEndianBytes(buffer[0..<Int(samples * channels)])
    }

    static func littleEndianBytes(_ samples: ArraySlice<Int16>) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: samples.count * 2)
        var index = 0
        for sample in samples {
            let bits = UInt16(bitPattern: sample)
            bytes[index] = UInt8(truncatingIfNeeded: bits)
            bytes[index + 1] = UInt8(truncatingIfNeeded: bits >> 8)
            index += 2
        }
        return bytes
    }
}

/// Encodes 16-bit PCM to Opus packets (libopus, VOIP application), one packet per frame.
///
/// Configured for speech: VOIP application, a target `bitrate`, and optionally a `complexity` and DTX.
/// With DTX on, frames of silence come out as packets of 1-2 bytes that a sender may skip (the decoder
/// conceals them).
public final class OpusEncoder {
    public let sampleRate: Int32
    public let channels: Int32
    /// The target bitrate in bit/s.
    public let bitrate: Int32
    /// Whether discontinuous transmission is on.
    public let dtx: Bool
    /// The codec delay in samples per channel: decoded audio lags the input by this much.
    public let lookahead: Int
    private let encoder: OpaquePointer
    private var packet = [UInt8](repeating: 0, count: 4000)

    /// - Parameters:
    ///   - sampleRate: 8000, 12000, 16000, 24000 or 48000.
    ///   - channels: 1 or 2.
    ///   - bitrate: target bit/s; 24000 is clear wideband speech.
    ///   - complexity: 0 (cheapest) to 10 (libopus's default, best); `nil` keeps libopus's default.
    ///   - dtx: discontinuous transmission (tiny packets during silence).
    public init(
        sampleRate: Int32, channels: Int32, bitrate: Int32 = 24000, complexity: Int32? = nil, dtx: Bool = false
    ) throws(OpusError) {
        var error: Int32 = 0
        guard let encoder = opus_encoder_create(sampleRate, channels, OPUS_APPLICATION_VOIP, &error), error == OPUS_OK else {
            throw OpusError(code: error == OPUS_OK ? OPUS_ALLOC_FAIL : error)
        }
        var rc = edge_opus_encoder_set_bitrate(encoder, bitrate)
        if rc == OPUS_OK, let complexity { rc = edge_opus_encoder_set_complexity(encoder, complexity) }
        if rc == OPUS_OK { rc = edge_opus_encoder_set_dtx(encoder, dtx ? 1 : 0) }
        var lookahead: Int32 = 0
        if rc == OPUS_OK { rc = edge_opus_encoder_get_lookahead(encoder, &lookahead) }
        guard rc == OPUS_OK else {
            opus_encoder_destroy(encoder)
            throw OpusError(code: rc)
        }
        self.encoder = encoder
        self.sampleRate = sampleRate
        self.channels = channels
        self.bitrate = bitrate
        self.dtx = dtx
        self.lookahead = Int(lookahead)
    }

    deinit {
        opus_encoder_destroy(encoder)
    }

    /// Samples per channel in one frame of `milliseconds` (2.5, 5, 10, 20, 40 or 60 ms are valid).
    public func frameSize(milliseconds: Int) -> Int { Int(sampleRate) * milliseconds / 1000 }

    /// Encodes one frame of interleaved samples (a valid Opus frame size times `channels`).
    public func encode(_ samples: [Int16]) throws(OpusError) -> [UInt8] {
        let frames = Int32(samples.count) / channels
        guard frames > 0 else { throw OpusError(code: OPUS_BAD_ARG) }
        let length = samples.withUnsafeBufferPointer { input in
            packet.withUnsafeMutableBufferPointer { output in
                opus_encode(encoder, input.baseAddress!, frames, output.baseAddress!, Int32(output.count))
            }
        }
        guard length >= 0 else { throw OpusError(code: length) }
        return Array(packet[0..<Int(length)])
    }
}
