import Audio
import Foundation
import Testing

@Suite struct PCMResamplerTests {
    static func tone(seconds: Double, frequency: Double, sampleRate: Int, amplitude: Double = 10000) -> [Int16] {
        (0..<Int(seconds * Double(sampleRate))).map { Int16(amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(sampleRate))) }
    }

    /// Upward zero crossings per second, each crossing placed between its two samples: the tone's frequency.
    static func frequency(of samples: [Int16], sampleRate: Int) -> Double {
        var crossings: [Double] = []
        for index in 1..<samples.count where samples[index - 1] < 0 && samples[index] >= 0 {
            let (a, b) = (Double(samples[index - 1]), Double(samples[index]))
            crossings.append(Double(index - 1) + -a / (b - a))
        }
        guard let first = crossings.first, let last = crossings.last, crossings.count > 1 else { return 0 }
        return Double(crossings.count - 1) / ((last - first) / Double(sampleRate))
    }

    /// The largest difference from the ideal tone at the output rate.
    static func deviation(_ samples: [Int16], frequency: Double, sampleRate: Int, amplitude: Double = 10000) -> Double {
        samples.indices.map { abs(Double(samples[$0]) - amplitude * sin(2 * Double.pi * frequency * Double($0) / Double(sampleRate))) }.max() ?? 0
    }

    @Test func downFrom22050To16000KeepsTheFrequencyAndTheDuration() {
        let input = Self.tone(seconds: 1, frequency: 440, sampleRate: 22050)
        let output = PCMResampler(from: 22050, to: 16000).convert(input)
        #expect(output.count == 16000)
        #expect(abs(Self.frequency(of: output, sampleRate: 16000) - 440) < 0.5)
        // Linear interpolation of a 440 Hz tone sampled at 22,050 Hz is off by well under 1 % of the amplitude.
        #expect(Self.deviation(output, frequency: 440, sampleRate: 16000) < 100)

        // A length that does not divide: 1001 frames are 726.3 output samples.
        #expect(PCMResampler(from: 22050, to: 16000).convert(Array(input.prefix(1001))).count == 726)
    }

    @Test func upFrom16000To48000KeepsTheFrequencyAndTheDuration() {
        let input = Self.tone(seconds: 0.5, frequency: 1000, sampleRate: 16000)
        let output = PCMResampler(from: 16000, to: 48000).convert(input)
        #expect(output.count == 24000)
        #expect(abs(Self.frequency(of: output, sampleRate: 48000) - 1000) < 1)
        // The last two outputs lie after the last input frame and hold its value (finish()); the rest follow the tone.
        #expect(Self.deviation(Array(output.dropLast(2)), frequency: 1000, sampleRate: 48000) < 250)
        #expect(output.suffix(3).allSatisfy { $0 == input.last })
        // Every third output sample is an input sample.
        #expect(stride(from: 0, to: output.count, by: 3).allSatisfy { output[$0] == input[$0 / 3] })
    }

    @Test func theSameRateIsTheSameAudio() {
        let input = Self.tone(seconds: 0.1, frequency: 300, sampleRate: 16000)
        #expect(PCMResampler(from: 16000, to: 16000).convert(input) == input)
    }

    @Test func stereoIsAveragedToMono() {
        // Left a tone, right its negative: silence. Left 1000, right 3000: 2000.
        let tone = Self.tone(seconds: 0.1, frequency: 440, sampleRate: 16000)
        let opposite = tone.flatMap { [$0, -$0] }
        #expect(PCMResampler(from: 16000, to: 16000, channels: 2).convert(opposite) == [Int16](repeating: 0, count: tone.count))
        let constant = [Int16](repeating: 0, count: 200).indices.flatMap { _ in [Int16(1000), Int16(3000)] }
        let mono = PCMResampler(from: 22050, to: 16000, channels: 2).convert(constant)
        #expect(mono.count == (200 * 16000 + 11025) / 22050)
        #expect(mono.allSatisfy { $0 == 2000 })
    }

    @Test func emptyInputGivesEmptyOutput() {
        #expect(PCMResampler(from: 22050, to: 16000).convert([]).isEmpty)
        #expect(PCMResampler(from: 16000, to: 48000, channels: 2).convert([]).isEmpty)
        // Half a stereo frame is no frame.
        #expect(PCMResampler(from: 16000, to: 48000, channels: 2).convert([5]).isEmpty)
        var resampler = PCMResampler(from: 16000, to: 8000)
        #expect(resampler.push([]).isEmpty)
        #expect(resampler.finish().isEmpty)
    }

    @Test(arguments: [(22050, 16000, 1), (16000, 48000, 2), (44100, 16000, 2), (8000, 16000, 1)])
    func piecesOfAnySizeGiveWhatTheWholeClipGives(rates: (Int, Int, Int)) {
        let (from, to, channels) = rates
        let clip = Self.tone(seconds: 0.3, frequency: 523, sampleRate: from * channels)
        let whole = PCMResampler(from: from, to: to, channels: channels).convert(clip)
        var resampler = PCMResampler(from: from, to: to, channels: channels)
        var pieces: [Int16] = []
        var start = 0
        var size = 1
        while start < clip.count {
            let end = min(clip.count, start + size)
            pieces += resampler.push(Array(clip[start..<end]))
            start = end
            size = size * 7 % 1013 + 1  // 1, 8, 57, 400, … : odd sizes, partial stereo frames included
        }
        pieces += resampler.finish()
        #expect(pieces == whole)
    }

    @Test func littleEndianBytesBecomeSamplesAndOnly16BitIsTaken() throws {
        #expect(try PCMResampler.samples(littleEndian: [0x01, 0x00, 0xFF, 0xFF, 0x00, 0x80, 0x7F], width: 2) == [1, -1, Int16.min])
        #expect(try PCMResampler.samples(littleEndian: [], width: 2).isEmpty)
        for width in [1, 3, 4] {
            #expect(throws: PCMResampler.FormatError.self) { try PCMResampler.samples(littleEndian: [0, 0, 0, 0], width: width) }
        }
        do {
            _ = try PCMResampler.samples(littleEndian: [0, 0, 0], width: 3)
            Issue.record("24-bit audio was taken")
        } catch {
            #expect(error.description.contains("16-bit"), "\(error)")
        }
    }
}

/// The streaming use (a device's PCM bytes to Wyoming's 16 kHz mono, as they arrive).
@Suite struct PCMResamplerByteStreamTests {
    static func pcm(_ samples: [Int16]) -> [UInt8] {
        samples.flatMap { sample -> [UInt8] in
            let bits = UInt16(bitPattern: sample)
            return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
        }
    }

    static func samples(_ bytes: [UInt8]) -> [Int16] {
        stride(from: 0, to: bytes.count - 1, by: 2).map { Int16(bitPattern: UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8) }
    }

    static func tone(frequency: Double, rate: Int, seconds: Double, channels: Int = 1) -> [Int16] {
        let count = Int(Double(rate) * seconds)
        return (0..<count).flatMap { index in
            [Int16](repeating: Int16(12_000 * sin(2 * .pi * frequency * Double(index) / Double(rate))), count: channels)
        }
    }

    /// The dominant frequency (by zero crossings) of a 16 kHz signal.
    static func frequency(_ samples: [Int16], rate: Int) -> Double {
        var crossings = 0
        for index in 1..<samples.count where (samples[index - 1] < 0) != (samples[index] < 0) { crossings += 1 }
        return Double(crossings) / 2 / (Double(samples.count) / Double(rate))
    }

    @Test(arguments: [(48_000, 2), (44_100, 1), (22_050, 2), (8_000, 1), (16_000, 2)])
    func aToneKeepsItsFrequencyAndTheAudioItsLength(rate: Int, channels: Int) {
        var resampler = PCMResampler(from: rate, to: 16_000, channels: channels)
        let input = Self.tone(frequency: 440, rate: rate, seconds: 1, channels: channels)
        let output = Self.samples(resampler.push(littleEndian: Self.pcm(input)) + Self.pcm(resampler.finish()))
        #expect(abs(output.count - 16_000) <= 2, "one second at 16 kHz: \(output.count) samples")
        let heard = Self.frequency(output, rate: 16_000)
        #expect(abs(heard - 440) < 5, "440 Hz stays 440 Hz: \(heard)")
    }

    @Test func chunksSplitAnywhereGiveWhatTheWholeAudioGives() {
        let input = Self.pcm(Self.tone(frequency: 300, rate: 48_000, seconds: 0.5, channels: 2))
        var whole = PCMResampler(from: 48_000, to: 16_000, channels: 2)
        let expected = whole.push(littleEndian: input)
        var split = PCMResampler(from: 48_000, to: 16_000, channels: 2)
        var output: [UInt8] = []
        var offset = 0
        var size = 1
        while offset < input.count {
            let end = min(input.count, offset + size)
            output += split.push(littleEndian: Array(input[offset..<end]))
            offset = end
            size = size % 997 + 3  // odd sizes: frames and samples split across chunks
        }
        #expect(output.count == expected.count)
        #expect(output == expected)
    }

    @Test func stereoIsAveragedToMono() {
        var resampler = PCMResampler(from: 16_000, to: 16_000, channels: 2)
        let output = Self.samples(resampler.push(littleEndian: Self.pcm([1000, 3000, -2000, 0, 32767, 32767])))
        #expect(output == [2000, -1000, 32767])
        #expect(!resampler.isIdentity)
        #expect(PCMResampler(from: 16_000, to: 16_000, channels: 1).isIdentity)
    }
}

/// The wake-word listener's use: the microphone's frames, one at a time, to 16 kHz.
@Suite struct PCMResamplerFrameTests {
    static func sine(hertz: Double, rate: Int, seconds: Double) -> [Int16] {
        (0..<Int(Double(rate) * seconds)).map { Int16(10000 * sin(2 * Double.pi * hertz * Double($0) / Double(rate))) }
    }

    static func zeroCrossings(_ samples: [Int16]) -> Int {
        zip(samples, samples.dropFirst()).filter { ($0 < 0) != ($1 < 0) }.count
    }

    @Test(arguments: [48_000, 24_000, 12_000, 8000])
    func framesGiveTheSameSignalAsTheWholeRecordingAtTheNewRate(rate: Int) {
        let input = Self.sine(hertz: 440, rate: rate, seconds: 1)
        var whole = PCMResampler(from: rate, to: 16_000)
        let once = whole.push(input)
        var framed = PCMResampler(from: rate, to: 16_000)
        let period = rate / 50  // 20 ms
        let pieces = stride(from: 0, to: input.count, by: period).flatMap { framed.push(Array(input[$0..<min($0 + period, input.count)])) }
        #expect(pieces == once)
        #expect(abs(once.count - 16_000) <= 1, "\(once.count) samples for 1 s")
        // Still a 440 Hz tone: 880 zero crossings a second, give or take the ends.
        #expect(abs(Self.zeroCrossings(once) - 880) <= 2, "\(Self.zeroCrossings(once))")
    }

    @Test func equalRatesPassTheSamplesThrough() {
        var same = PCMResampler(from: 16_000, to: 16_000)
        let input = Self.sine(hertz: 300, rate: 16_000, seconds: 0.02)
        #expect(same.push(input) == input)
    }

    @Test func fullScaleSamplesDoNotWrapAround() {
        var resampler = PCMResampler(from: 48_000, to: 16_000)
        let output = resampler.push([Int16](repeating: .max, count: 960) + [Int16](repeating: .min, count: 960))
        #expect(output.count == 640)
        #expect(output.first == .max && output.last == .min)
        // From full scale positive to full scale negative once: no sample wrapped to the other sign.
        #expect(output.drop(while: { $0 > 0 }).allSatisfy { $0 <= 0 })
    }
}
