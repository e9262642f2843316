import Audio
import Dialog
import Foundation
import Testing

/// Which source opens a segment of the hub microphone in each `audio.wake.mode`, and which frames it carries,
/// without a daemon: frames in, actions out.
@Suite struct MicrophoneSegmenterTests {
    /// Frames of 20 ms at 16 kHz; each carries its number in its first sample, so the test can tell them apart.
    static func quiet(_ number: Int) -> [Int16] {
        var frame = (0..<320).map { Int16(($0 * 7919 + number * 31) % 41 - 20) }  // about -65 dBFS: never speech
        frame[0] = Int16(number)
        return frame
    }

    static func loud(_ number: Int) -> [Int16] {
        var frame: [Int16] = (0..<320).map { (index: Int) -> Int16 in
            let phase = 2 * Double.pi * 220 * Double(index) / 16000
            return Int16(8000 * sin(phase))
        }
        frame[0] = Int16(number)
        return frame
    }

    /// 1 s quiet, 1 s speech, 1 s quiet: frames 0–49 quiet, 50–99 loud, 100–149 quiet.
    static let recording: [[Int16]] = (0..<150).map { (50..<100).contains($0) ? loud($0) : quiet($0) }

    struct Run {
        var actions: [(frame: Int, action: MicrophoneSegmenter.Action)] = []
        /// The segments: trigger and the numbers of their frames.
        var segments: [(trigger: SegmentTrigger, frames: [Int])] {
            var result: [(SegmentTrigger, [Int])] = []
            var open = false
            for (_, action) in actions {
                switch action {
                case .begin(let trigger, _):
                    result.append((trigger, []))
                    open = true
                case .send(let frame):
                    #expect(open, "a frame outside a segment")
                    result[result.count - 1].1.append(Int(frame[0]))
                case .end:
                    open = false
                case .ignoredDetection:
                    break
                }
            }
            return result
        }
        var ignoredDetections: Int { actions.filter { $0.action == .ignoredDetection }.count }
    }

    static func run(
        _ mode: WakeMode, frames: [[Int16]] = recording, detections: Set<Int> = [], pushToTalk: [Int: Int] = [:],
        vad: VADConfiguration = VADConfiguration()
    ) -> Run {
        var segmenter = MicrophoneSegmenter(mode: mode, vad: vad)
        var run = Run()
        for (number, frame) in frames.enumerated() {
            for action in segmenter.process(frame, pushToTalk: pushToTalk[number], detection: detections.contains(number)) {
                run.actions.append((number, action))
            }
        }
        // Each frame belongs to at most one segment, in order.
        let sent = run.segments.flatMap(\.frames)
        #expect(sent == sent.sorted() && Set(sent).count == sent.count, "\(sent)")
        return run
    }

    @Test func vadModeOpensOnSpeechAndNeverLooksAtDetections() {
        let run = Self.run(.vad, detections: [20, 60])
        #expect(run.segments.map(\.trigger) == [.vad])
        #expect(run.ignoredDetections == 0)
        let frames = run.segments[0].frames
        // The detector's pre-roll (200 ms) and speech start (100 ms), then the speech and its hangover (300 ms).
        #expect(frames.first == 40 && frames.contains(99), "\(frames)")
        #expect(frames.last! < 100 + 20, "\(frames)")
    }

    @Test func wakeModeOpensNothingForSpeechWithoutADetection() {
        let run = Self.run(.wake)
        let actions = run.actions.count
        #expect(actions == 0, "segments: \(run.segments.map { "\($0.trigger) frames \($0.frames.first ?? -1)...\($0.frames.last ?? -1)" })")
    }

    @Test func aDetectionInQuietOpensASegmentWithThePreRollThatEndsWithTheNextSpeech() {
        let run = Self.run(.wake, detections: [30])
        #expect(run.segments.map(\.trigger) == [.wake])
        let frames = run.segments[0].frames
        // 200 ms before the detection's frame (10 frames), then every frame until the speech ended.
        #expect(frames.first == 20, "\(frames)")
        #expect(frames == Array(20..<frames.last! + 1), "every frame, in order")
        #expect(frames.contains(99) && frames.last! < 120, "ends with the speech's hangover: \(frames.last!)")
        #expect(run.actions.last?.action == .end)
    }

    @Test func aDetectionDuringSpeechEndsWithThatSpeech() {
        let run = Self.run(.wake, detections: [70])
        let frames = run.segments[0].frames
        #expect(frames.first == 60 && frames.contains(99) && frames.last! < 120, "\(frames)")
    }

    @Test func bothModeOpensOnWhicheverComesFirstAndIgnoresDetectionsInAnOpenSegment() {
        // The speech opens it (frame 55); the detection at 70 comes during it.
        let speechFirst = Self.run(.both, detections: [70])
        #expect(speechFirst.segments.map(\.trigger) == [.vad])
        #expect(speechFirst.ignoredDetections == 1)
        // The detection opens it before the speech; the speech start changes nothing.
        let wakeFirst = Self.run(.both, detections: [10])
        #expect(wakeFirst.segments.map(\.trigger) == [.wake])
        #expect(wakeFirst.segments[0].frames.first == 0 && wakeFirst.segments[0].frames.contains(99))
    }

    @Test func aWakeSegmentWithoutSpeechEndsAtTheMaximumLength() {
        var vad = VADConfiguration()
        vad.maxSegmentSeconds = 1
        let quiet = (0..<200).map(Self.quiet)
        let limited = Self.run(.wake, frames: quiet, detections: [100], vad: vad)
        #expect(limited.segments.count == 1)
        // 1 s = 50 frames, the pre-roll included.
        #expect(limited.segments[0].frames == Array(90..<140), "\(limited.segments[0].frames)")
    }

    @Test func pushToTalkWinsOverAnOpenWakeSegment() {
        let run = Self.run(.wake, detections: [10, 30], pushToTalk: [20: 5])
        #expect(run.segments.map(\.trigger) == [.wake, .pushToTalk, .wake])
        #expect(run.segments[1].frames == Array(20..<25))
        // After push-to-talk, the detection at 30 opens a new segment; its pre-roll is only frames after push-to-talk.
        #expect(run.segments[2].frames.first == 25, "\(run.segments[2].frames)")
    }
}
