import Audio
import Foundation
import Testing

@Suite struct PCMResamplerTests {
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
        let once = whole.process(input)
        var framed = PCMResampler(from: rate, to: 16_000)
        let period = rate / 50  // 20 ms
        let pieces = stride(from: 0, to: input.count, by: period).flatMap { framed.process(Array(input[$0..<min($0 + period, input.count)])) }
        #expect(pieces == once)
        #expect(abs(once.count - 16_000) <= 1, "\(once.count) samples for 1 s")
        // Still a 440 Hz tone: 880 zero crossings a second, give or take the ends.
        #expect(abs(Self.zeroCrossings(once) - 880) <= 2, "\(Self.zeroCrossings(once))")
    }

    @Test func equalRatesPassTheSamplesThrough() {
        var same = PCMResampler(from: 16_000, to: 16_000)
        let input = Self.sine(hertz: 300, rate: 16_000, seconds: 0.02)
        #expect(same.process(input) == input)
    }

    @Test func fullScaleSamplesDoNotWrapAround() {
        var resampler = PCMResampler(from: 48_000, to: 16_000)
        let output = resampler.process([Int16](repeating: .max, count: 960) + [Int16](repeating: .min, count: 960))
        #expect(output.count == 640)
        #expect(output.first == .max && output.last == .min)
        // From full scale positive to full scale negative once: no sample wrapped to the other sign.
        #expect(output.drop(while: { $0 > 0 }).allSatisfy { $0 <= 0 })
    }
}
