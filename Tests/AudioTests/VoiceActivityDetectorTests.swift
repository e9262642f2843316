import Audio
import Foundation
import Testing

/// A segment as a consumer following the documented protocol sees it, in frame indices.
struct DetectedSegment {
    var frames: Range<Int>
    var reason: VADEndReason?
    var samples: [Int16]
}

/// Runs `vad` over `frames` the way the microphone service will: pre-roll on start, then each frame
/// while speaking, close on end.
func segments(of frames: [[Int16]], vad: inout VoiceActivityDetector) -> [DetectedSegment] {
    var result: [DetectedSegment] = []
    var open: DetectedSegment?
    for (index, frame) in frames.enumerated() {
        switch vad.process(frame) {
        case .speechStarted(let preRoll)?:
            open = DetectedSegment(frames: (index + 1 - preRoll.count)..<(index + 1), samples: preRoll.flatMap { $0 })
        case .speechEnded(let reason)?:
            open?.reason = reason
            if let segment = open { result.append(segment) }
            open = nil
        case nil:
            if vad.isSpeaking, var segment = open {
                segment.frames = segment.frames.lowerBound..<(index + 1)
                segment.samples += frame
                open = segment
            }
        }
    }
    if let open { result.append(open) }
    return result
}

/// Reads a whole file through ALSA (file plugin over null, unpaced) in 20 ms frames.
func captureFrames(of samples: [Int16], fixture: AudioFixture, name: String) throws -> [[Int16]] {
    let path = try fixture.write(samples, name: "\(name).raw")
    let capture = try ALSACapture.open(device: name, configuration: AudioFixture.capturePCM(name, infile: path), paced: false)
    defer { capture.close() }
    return try (0..<(samples.count / AudioFixture.frame)).map { _ in try capture.read() }
}

@Suite struct VoiceActivityDetectorTests {
    static let ms = AudioFixture.sampleRate / 1000

    @Test func findsEachBurstOfCapturedSpeechWithinTolerance() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let signal = SpeechSignal(pattern: [1.0, 0.8, 0.7, 1.2, 1.0])
        let frames = try captureFrames(of: signal.samples, fixture: fixture, name: "speech")
        #expect(frames.flatMap { $0 } == signal.samples)

        let configuration = VADConfiguration()
        var vad = VoiceActivityDetector(configuration: configuration)
        let found = segments(of: frames, vad: &vad)

        try #require(found.count == signal.bursts.count, "segments \(found.map(\.frames))")
        for (segment, burst) in zip(found, signal.bursts) {
            let start = segment.frames.lowerBound * AudioFixture.frame
            let end = segment.frames.upperBound * AudioFixture.frame
            // The pre-roll reaches back before the burst: the first syllable is not lost...
            #expect(start <= burst.lowerBound, "segment starts at \(start / Self.ms) ms, burst at \(burst.lowerBound / Self.ms) ms")
            // ...and speech was recognised (start + pre-roll) within 100 ms after the burst began.
            let onset = start + configuration.preRollMs * Self.ms
            #expect(onset >= burst.lowerBound - 40 * Self.ms && onset <= burst.lowerBound + 100 * Self.ms, "onset \(onset / Self.ms) ms, burst \(burst.lowerBound / Self.ms) ms")
            // It ends after the burst, within the hangover plus 100 ms.
            #expect(end >= burst.upperBound && end <= burst.upperBound + (configuration.hangoverMs + 100) * Self.ms, "end \(end / Self.ms) ms, burst end \(burst.upperBound / Self.ms) ms")
            #expect(segment.reason == .silence)
            // The consumer got exactly the frames of the segment, in order, none twice.
            #expect(segment.samples == Array(signal.samples[start..<end]))
        }
        #expect(!vad.isSpeaking)
    }

    @Test func roomNoiseAloneStartsNoSegment() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        var signal = SpeechSignal(pattern: [])
        signal.appendNoise(count: 5 * AudioFixture.sampleRate)
        let frames = try captureFrames(of: signal.samples, fixture: fixture, name: "noise")
        var vad = VoiceActivityDetector()
        #expect(segments(of: frames, vad: &vad).isEmpty)
        // The floor settled near the noise (about -42 dBFS).
        let floor = try #require(vad.noiseFloorDBFS)
        #expect(abs(floor - rmsDBFS(signal.samples[...])) < 3, "floor \(floor)")
    }

    @Test func digitalSilenceStartsNoSegment() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let frames = try captureFrames(of: [Int16](repeating: 0, count: 3 * AudioFixture.sampleRate), fixture: fixture, name: "zeros")
        var vad = VoiceActivityDetector()
        #expect(segments(of: frames, vad: &vad).isEmpty)
        #expect(vad.lastLevelDBFS == VoiceActivityDetector.silenceDBFS)
    }

    @Test func faintHissAfterDigitalSilenceStartsNoSegment() {
        // Below the absolute minimum level: the floor may sink to nothing, the hiss still is not speech.
        var noise = NoiseGenerator(seed: 42)
        let silence = [[Int16]](repeating: [Int16](repeating: 0, count: 320), count: 50)
        let hiss = (0..<100).map { _ in (0..<320).map { _ in Int16(noise.next() * 20) } }
        var vad = VoiceActivityDetector()
        #expect(segments(of: silence + hiss, vad: &vad).isEmpty)
    }

    @Test func aSegmentLongerThanTheMaximumIsCutAndResumes() {
        var signal = SpeechSignal(pattern: [0.5])
        signal.appendBurst(count: 5 * AudioFixture.sampleRate, amplitude: 5000)
        signal.appendNoise(count: AudioFixture.sampleRate)
        let frames = stride(from: 0, to: signal.samples.count, by: 320).map { Array(signal.samples[$0..<$0 + 320]) }
        var vad = VoiceActivityDetector(configuration: VADConfiguration(maxSegmentSeconds: 2))
        let found = segments(of: frames, vad: &vad)
        #expect(found.count == 3, "segments \(found.map(\.frames))")
        #expect(found.first?.reason == .maximumLength)
        #expect(found.first.map { $0.frames.count * 20 } == 2000)
        #expect(found.last?.reason == .silence)
        // Cut segments follow each other without losing or repeating a frame (pre-roll was cleared).
        for (a, b) in zip(found, found.dropFirst()) where a.reason == .maximumLength {
            #expect(b.frames.lowerBound >= a.frames.upperBound)
            #expect(b.frames.lowerBound - a.frames.upperBound <= 5)
        }
    }

    @Test func aClickShorterThanTheMinimumSpeechStartsNoSegment() {
        var noise = NoiseGenerator(seed: 7)
        func noiseFrame() -> [Int16] { (0..<320).map { _ in Int16(noise.next() * 260) } }
        let click = (0..<320).map { Int16($0 % 2 == 0 ? 12000 : -12000) }
        let frames = (0..<50).map { _ in noiseFrame() } + [click, click] + (0..<50).map { _ in noiseFrame() }
        var vad = VoiceActivityDetector()
        #expect(segments(of: frames, vad: &vad).isEmpty)
    }
}
