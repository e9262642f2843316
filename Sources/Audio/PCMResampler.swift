/// Changes the sample rate of mono 16-bit PCM by linear interpolation, frame by frame.
///
/// Guarantees: the output of consecutive ``process(_:)`` calls is one continuous signal (the position
/// between input samples and the last sample are carried over), so 20 ms frames in give the same audio
/// as the whole recording at once; over a long stream the output has `inputCount × to / from` samples,
/// give or take one. Equal rates pass the samples through unchanged. A value type, no allocation beyond
/// the output: one consumer feeds it.
///
/// Linear interpolation has no anti-aliasing filter: good enough for speech to a wake-word or speech
/// model (48 kHz → 16 kHz keeps everything below 8 kHz and folds little energy back), not for music.
///
/// ```swift
/// var resampler = PCMResampler(from: 48_000, to: 16_000)
/// let frame16k = resampler.process(frame48k)   // 960 samples in, 320 out
/// ```
public struct PCMResampler: Sendable {
    public let inputRate: Int
    public let outputRate: Int
    /// Where the next output sample lies, in input samples, relative to the first sample of the next input
    /// (may be negative: between the previous input's last sample and the next one's first).
    private var position: Double = 0
    /// The previous input's last sample (interpolated against when `position` < 0).
    private var last: Int16 = 0
    private var started = false

    public init(from inputRate: Int, to outputRate: Int) {
        precondition(inputRate > 0 && outputRate > 0, "sample rates must be positive")
        self.inputRate = inputRate
        self.outputRate = outputRate
    }

    /// The next part of the signal at ``outputRate``.
    public mutating func process(_ samples: [Int16]) -> [Int16] {
        if inputRate == outputRate || samples.isEmpty { return samples }
        if !started {
            started = true
            last = samples[0]
        }
        let step = Double(inputRate) / Double(outputRate)
        var output: [Int16] = []
        output.reserveCapacity(Int(Double(samples.count) / step) + 2)
        let count = Double(samples.count)
        // Each output sample at `position` needs the input samples either side of it; the last input
        // sample is its own right neighbour only when the position is exactly on it.
        while position <= count - 1 {
            let index = Int(position.rounded(.down))
            let fraction = position - Double(index)
            let left = index < 0 ? Double(last) : Double(samples[index])
            let right = Double(samples[index + 1 < samples.count ? index + 1 : index])
            let value = left + (right - left) * fraction
            output.append(Int16(max(-32768, min(32767, value.rounded()))))
            position += step
        }
        position -= count
        last = samples[samples.count - 1]
        return output
    }
}
