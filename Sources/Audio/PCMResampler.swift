/// Converts interleaved 16-bit PCM of any rate and channel count to mono at another rate, by averaging the
/// channels of each frame and interpolating linearly between neighbouring frames.
///
/// Guarantees:
/// - Fed a whole clip through ``push(_:)`` and ``finish()`` (or ``convert(_:)``), the output has
///   `round(frames × outputRate / inputRate)` samples: the clip's duration to within half an output sample.
/// - A tone keeps its frequency (no drift: positions are exact fractions, not accumulated floating point).
/// - It can be fed in pieces of any size (partial frames are kept for the next piece); the output is the
///   same as for the whole clip at once.
/// - No filtering: going down in rate, content above the new Nyquist frequency aliases. Speech and chimes
///   do not mind; music would.
///
/// ```swift
/// let speech = try PCMResampler.samples(littleEndian: pcm, width: 2)   // a TTS server's bytes
/// let mono16k = PCMResampler(from: 22_050, to: 16_000, channels: 1).convert(speech)
/// ```
public struct PCMResampler: Sendable, Hashable {
    public let inputRate: Int
    public let outputRate: Int
    /// Channels of the input (interleaved); the output is mono.
    public let inputChannels: Int

    /// Input frames taken so far (after downmixing).
    private var framesIn = 0
    /// Output samples made so far; the next one sits at input frame `producedOut × inputRate / outputRate`.
    private var producedOut = 0
    /// The last input frame (mono): the left neighbour of an output that falls between two pieces.
    private var last: Int16 = 0
    /// Samples of an incomplete frame at the end of the last piece.
    private var partial: [Int16] = []
    /// The first byte of a sample split between two pieces of bytes (``push(littleEndian:)``).
    private var oddByte: UInt8?

    /// - Precondition: rates and channel count are positive.
    public init(from inputRate: Int, to outputRate: Int, channels: Int = 1) {
        precondition(inputRate > 0 && outputRate > 0 && channels > 0, "PCMResampler needs positive rates and channels")
        self.inputRate = inputRate
        self.outputRate = outputRate
        self.inputChannels = channels
    }

    /// Whether the conversion does anything (not already mono at the output rate).
    public var isIdentity: Bool { inputRate == outputRate && inputChannels == 1 }

    /// ``push(_:)`` for little-endian 16-bit bytes as they arrive (a device's PCM stream): a sample split between
    /// two pieces waits for the rest. Returns 16-bit little-endian mono at the output rate.
    public mutating func push(littleEndian bytes: [UInt8]) -> [UInt8] {
        var input = bytes
        if let oddByte {
            input.insert(oddByte, at: 0)
            self.oddByte = nil
        }
        if input.count % 2 == 1 { oddByte = input.removeLast() }
        let samples = (try? Self.samples(littleEndian: input, width: 2)) ?? []
        let output = push(samples)
        var out = [UInt8](repeating: 0, count: output.count * 2)
        for (index, sample) in output.enumerated() {
            let bits = UInt16(bitPattern: sample)
            out[2 * index] = UInt8(bits & 0xFF)
            out[2 * index + 1] = UInt8(bits >> 8)
        }
        return out
    }

    /// Converts a whole clip of interleaved samples (a trailing incomplete frame is dropped).
    public func convert(_ samples: [Int16]) -> [Int16] {
        var resampler = PCMResampler(from: inputRate, to: outputRate, channels: inputChannels)
        return resampler.push(samples) + resampler.finish()
    }

    /// Takes the next piece of interleaved input; returns the output samples it completes.
    public mutating func push(_ samples: [Int16]) -> [Int16] {
        let mono = downmix(samples)
        guard !mono.isEmpty else { return [] }
        // The piece covers input frames framesIn ..< framesIn + mono.count; frame framesIn - 1 is `last`.
        let first = framesIn
        let lastIndex = first + mono.count - 1
        func frame(_ index: Int) -> Int16 { index < first ? last : mono[index - first] }
        var output: [Int16] = []
        output.reserveCapacity(mono.count * outputRate / inputRate + 2)
        // Every output whose position is at or before the piece's last frame can be made now.
        while producedOut * inputRate <= lastIndex * outputRate {
            let position = producedOut * inputRate
            let index = position / outputRate
            let remainder = position % outputRate
            let left = Double(frame(index))
            let value =
                remainder == 0 ? left : left + (Double(frame(index + 1)) - left) * Double(remainder) / Double(outputRate)
            output.append(Int16(value.rounded()))
            producedOut += 1
        }
        framesIn += mono.count
        last = mono[mono.count - 1]
        return output
    }

    /// Ends the clip: the outputs after the last input frame (holding its value), so the output's length is
    /// the input's duration at the output rate. The resampler starts over afterwards.
    public mutating func finish() -> [Int16] {
        let total = (framesIn * outputRate + inputRate / 2) / inputRate
        let tail = [Int16](repeating: last, count: max(0, total - producedOut))
        self = PCMResampler(from: inputRate, to: outputRate, channels: inputChannels)
        return tail
    }

    /// Mono frames from interleaved samples; samples of an incomplete last frame wait for the next piece.
    private mutating func downmix(_ samples: [Int16]) -> [Int16] {
        guard inputChannels > 1 else { return samples }
        let all = partial.isEmpty ? samples : partial + samples
        let frames = all.count / inputChannels
        partial = Array(all[(frames * inputChannels)...])
        var mono = [Int16](repeating: 0, count: frames)
        for frame in 0..<frames {
            var sum = 0
            for channel in 0..<inputChannels { sum += Int(all[frame * inputChannels + channel]) }
            mono[frame] = Int16(sum / inputChannels)
        }
        return mono
    }

    /// What is wrong with PCM bytes this type cannot take.
    public struct FormatError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// Samples from little-endian PCM bytes (Wyoming's and WAV's byte order); a trailing odd byte is dropped.
    /// - Throws: ``FormatError`` for any width other than 2 bytes (16 bit).
    public static func samples(littleEndian bytes: [UInt8], width: Int) throws(FormatError) -> [Int16] {
        guard width == 2 else {
            throw FormatError(description: "only 16-bit PCM can be played: the audio is \(width * 8)-bit (width \(width))")
        }
        var samples = [Int16](repeating: 0, count: bytes.count / 2)
        for index in samples.indices {
            samples[index] = Int16(bitPattern: UInt16(bytes[2 * index]) | UInt16(bytes[2 * index + 1]) << 8)
        }
        return samples
    }
}
