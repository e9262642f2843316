/// Turns 16-bit little-endian PCM at any rate and channel count into mono at another rate, as a
/// stream: chunks may split frames or samples anywhere, and the output of all chunks together is
/// what converting the whole audio at once gives. Channels are averaged; the rate is changed by
/// linear interpolation (enough for speech recognition at 16 kHz: the ASR models listen below 8 kHz).
///
/// ```swift
/// var resampler = PCMResampler(inputRate: 48_000, channels: 2, outputRate: 16_000)
/// let pcm16k = resampler.convert(chunk)   // 16 kHz mono, 16-bit LE
/// ```
public struct PCMResampler: Sendable {
    public let inputRate: Int
    public let channels: Int
    public let outputRate: Int

    /// Bytes of an incomplete frame, kept for the next chunk.
    private var carry: [UInt8] = []
    /// The last input sample of the previous chunk (mono), the left end of the next interpolation.
    private var previous: Double?
    /// Where the next output sample lies, in input samples from `previous` (or from the first
    /// sample of the next chunk while `previous` is nil).
    private var position: Double = 0

    public init(inputRate: Int, channels: Int, outputRate: Int = 16_000) {
        precondition(inputRate > 0 && channels > 0 && outputRate > 0, "rates and channels must be positive")
        self.inputRate = inputRate
        self.channels = channels
        self.outputRate = outputRate
    }

    /// Whether the conversion does anything (not already mono at the output rate).
    public var isIdentity: Bool { inputRate == outputRate && channels == 1 }

    /// Converts one chunk; returns the output samples it completes (16-bit LE mono).
    public mutating func convert(_ chunk: [UInt8]) -> [UInt8] {
        let bytesPerFrame = 2 * channels
        var bytes = carry
        bytes.append(contentsOf: chunk)
        let frames = bytes.count / bytesPerFrame
        carry = Array(bytes[(frames * bytesPerFrame)...])
        guard frames > 0 else { return [] }
        var mono: [Double] = []
        mono.reserveCapacity(frames + 1)
        if let previous { mono.append(previous) }
        for frame in 0..<frames {
            var sum = 0
            for channel in 0..<channels {
                let index = (frame * channels + channel) * 2
                sum += Int(Int16(bitPattern: UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8))
            }
            mono.append(Double(sum) / Double(channels))
        }
        var out: [UInt8] = []
        if inputRate == outputRate {
            let fresh = previous == nil ? mono[...] : mono.dropFirst()
            out.reserveCapacity(fresh.count * 2)
            for sample in fresh { Self.append(sample, to: &out) }
        } else {
            let step = Double(inputRate) / Double(outputRate)
            out.reserveCapacity(Int(Double(mono.count) / step + 2) * 2)
            while position <= Double(mono.count - 1) {
                let left = Int(position)
                let fraction = position - Double(left)
                let value = left + 1 < mono.count ? mono[left] + (mono[left + 1] - mono[left]) * fraction : mono[left]
                if left + 1 >= mono.count, fraction > 0 { break }
                Self.append(value, to: &out)
                position += step
            }
            position -= Double(mono.count - 1)
        }
        previous = mono[mono.count - 1]
        return out
    }

    private static func append(_ value: Double, to out: inout [UInt8]) {
        let sample = Int16(max(-32768, min(32767, value.rounded())))
        let bits = UInt16(bitPattern: sample)
        out.append(UInt8(bits & 0xFF))
        out.append(UInt8(bits >> 8))
    }
}
