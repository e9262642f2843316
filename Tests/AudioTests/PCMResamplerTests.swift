import Foundation
import Testing

@testable import Audio

/// The streaming resampler that turns devices' PCM into Wyoming's 16 kHz mono.
@Suite struct PCMResamplerTests {
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
        var resampler = PCMResampler(inputRate: rate, channels: channels)
        let input = Self.tone(frequency: 440, rate: rate, seconds: 1, channels: channels)
        let output = Self.samples(resampler.convert(Self.pcm(input)))
        #expect(abs(output.count - 16_000) <= 2, "one second at 16 kHz: \(output.count) samples")
        let heard = Self.frequency(output, rate: 16_000)
        #expect(abs(heard - 440) < 5, "440 Hz stays 440 Hz: \(heard)")
    }

    @Test func chunksSplitAnywhereGiveWhatTheWholeAudioGives() {
        let input = Self.pcm(Self.tone(frequency: 300, rate: 48_000, seconds: 0.5, channels: 2))
        var whole = PCMResampler(inputRate: 48_000, channels: 2)
        let expected = whole.convert(input)
        var split = PCMResampler(inputRate: 48_000, channels: 2)
        var output: [UInt8] = []
        var offset = 0
        var size = 1
        while offset < input.count {
            let end = min(input.count, offset + size)
            output += split.convert(Array(input[offset..<end]))
            offset = end
            size = size % 997 + 3  // odd sizes: frames and samples split across chunks
        }
        #expect(output.count == expected.count)
        #expect(output == expected)
    }

    @Test func stereoIsAveragedToMono() {
        var resampler = PCMResampler(inputRate: 16_000, channels: 2)
        let output = Self.samples(resampler.convert(Self.pcm([1000, 3000, -2000, 0, 32767, 32767])))
        #expect(output == [2000, -1000, 32767])
        #expect(!resampler.isIdentity)
        #expect(PCMResampler(inputRate: 16_000, channels: 1).isIdentity)
    }
}
