import Audio
import Foundation
import Testing

/// The microphone path end to end without the network: ALSA capture → VAD segment → Opus (VOIP,
/// 24 kbit/s, 20 ms) → decode, compared with what was captured.
@Suite struct CapturedSpeechOpusTests {
    @Test(arguments: [false, true])
    func aCapturedSegmentSurvivesAnOpusRoundTrip(dtx: Bool) throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let signal = SpeechSignal(pattern: [0.6, 1.2, 0.8])
        let frames = try captureFrames(of: signal.samples, fixture: fixture, name: "opus")
        var vad = VoiceActivityDetector()
        let segment = try #require(segments(of: frames, vad: &vad).first)
        let original = segment.samples

        let encoder = try OpusEncoder(sampleRate: 16000, channels: 1, bitrate: 24000, dtx: dtx)
        let decoder = try OpusDecoder(sampleRate: 16000, channels: 1)
        let frameSize = encoder.frameSize(milliseconds: 20)
        #expect(frameSize == 320)
        var decoded: [Int16] = []
        var packetBytes = 0
        for start in stride(from: 0, to: original.count, by: frameSize) {
            let packet = try encoder.encode(Array(original[start..<start + frameSize]))
            packetBytes += packet.count
            decoded += AudioFixture.samples(fromLittleEndian: try decoder.decode(packet))
        }
        #expect(decoded.count == original.count)
        let seconds = Double(original.count) / 16000
        #expect(Double(packetBytes * 8) / seconds < 24000 * 1.5, "\(packetBytes) bytes for \(seconds) s")

        // Opus delays the signal (lookahead, 6.5 ms at 16 kHz); search the lag around it.
        #expect(encoder.lookahead > 0 && encoder.lookahead < 400)
        var best = (correlation: -1.0, lag: 0)
        let compared = 0..<(original.count - 800)
        for lag in 0..<400 {
            var dot = 0.0, a = 0.0, b = 0.0
            for i in compared {
                let x = Double(original[i]), y = Double(decoded[i + lag])
                dot += x * y
                a += x * x
                b += y * y
            }
            let correlation = dot / max((a * b).squareRoot(), 1)
            if correlation > best.correlation { best = (correlation, lag) }
        }
        #expect(best.correlation > 0.8, "correlation \(best.correlation) at lag \(best.lag)")
        let energyDifference = rmsDBFS(original[compared]) - rmsDBFS(decoded[(compared.lowerBound + best.lag)..<(compared.upperBound + best.lag)])
        #expect(abs(energyDifference) < 3, "energy differs by \(energyDifference) dB")
    }
}
