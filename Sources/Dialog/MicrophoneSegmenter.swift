import Audio

/// What opened a segment of the hub microphone (the `trigger` of `gateway.audio.segments.total`).
public enum SegmentTrigger: String, Sendable, Equatable {
    case vad
    case wake
    case pushToTalk = "push_to_talk"
}

/// Decides, frame by frame, where the hub microphone's segments start and end: which source opens one
/// (push-to-talk, a wake-word detection, the voice-activity detector's speech start, as `audio.wake.mode`
/// allows), and which frames belong to it. A value type with no clock and no I/O: the microphone's loop feeds
/// it every captured frame with what happened since the last one and carries out the actions it returns, in
/// order.
///
/// Rules:
/// - Push-to-talk wins: it ends an open segment and opens one for its frames, whatever the mode.
/// - `vad`: the detector's speech start opens a segment with its pre-roll; its end of speech (or the maximum
///   length) ends it. Detections are not looked at.
/// - `wake`: only a detection opens a segment; it carries the last `audio.vad.preRollMs` before the frame the
///   detection arrived with, then every frame, and ends with the detector's next end of speech or at
///   `audio.vad.maxSegmentSeconds` (pre-roll included). The detector's speech start opens nothing.
/// - `both`: a detection or the detector's speech start, whichever comes first, opens the segment.
/// - While a segment is open, detections are ignored (``Action/ignoredDetection``).
/// - Every frame belongs to at most one segment, in order, none twice.
public struct MicrophoneSegmenter: Sendable {
    public enum Action: Sendable, Equatable {
        /// Open a segment; push-to-talk names how many frames it lasts.
        case begin(SegmentTrigger, frames: Int?)
        /// A frame of the open segment.
        case send([Int16])
        /// End the open segment.
        case end
        /// A detection arrived while a segment was open: nothing opens.
        case ignoredDetection
    }

    private enum Open: Equatable {
        case vad
        case pushToTalk(remaining: Int)
        case wake(samples: Int)
    }

    public let mode: WakeMode
    private var detector: VoiceActivityDetector
    private var open: Open?
    /// The frames before the current one while no segment is open, at most `preRollMs` of them.
    private var preRoll: [[Int16]] = []
    private var preRollSamples = 0

    public init(mode: WakeMode, vad: VADConfiguration) {
        self.mode = mode
        detector = VoiceActivityDetector(configuration: vad)
    }

    /// What opened the segment that is open now; nil when none is.
    public var openTrigger: SegmentTrigger? {
        switch open {
        case .vad: .vad
        case .pushToTalk: .pushToTalk
        case .wake: .wake
        case nil: nil
        }
    }

    private var maxSegmentSamples: Int { Int(Double(detector.configuration.sampleRate) * detector.configuration.maxSegmentSeconds) }
    private var maxPreRollSamples: Int { detector.configuration.sampleRate * detector.configuration.preRollMs / 1000 }

    /// One captured frame.
    /// - Parameters:
    ///   - pushToTalk: a push-to-talk request that arrived since the last frame: how many frames it listens for.
    ///   - detection: whether a wake-word detection arrived since the last frame.
    public mutating func process(_ frame: [Int16], pushToTalk: Int? = nil, detection: Bool = false) -> [Action] {
        let event = detector.process(frame)
        var actions: [Action] = []
        if let frames = pushToTalk {
            if open != nil { actions.append(.end) }
            open = .pushToTalk(remaining: frames)
            actions.append(.begin(.pushToTalk, frames: frames))
            clearPreRoll()
        }
        if detection, mode != .vad {
            if open != nil {
                actions.append(.ignoredDetection)
            } else {
                open = .wake(samples: preRollSamples)
                actions.append(.begin(.wake, frames: nil))
                actions += preRoll.map(Action.send)
                clearPreRoll()
            }
        }
        switch open {
        case .pushToTalk(let remaining):
            actions.append(.send(frame))
            if remaining <= 1 {
                actions.append(.end)
                open = nil
            } else {
                open = .pushToTalk(remaining: remaining - 1)
            }
            return actions
        case .wake(let samples):
            if case .speechEnded = event {
                // As for the detector's own segments, the frame that ended the speech is not part of it.
                actions.append(.end)
                open = nil
                keep(frame)
                return actions
            }
            actions.append(.send(frame))
            if samples + frame.count >= maxSegmentSamples {
                actions.append(.end)
                open = nil
            } else {
                open = .wake(samples: samples + frame.count)
            }
            return actions
        case .vad, nil:
            break
        }
        switch event {
        case .speechStarted(let speech):
            if mode != .wake {
                open = .vad
                actions.append(.begin(.vad, frames: nil))
                actions += speech.map(Action.send)
                clearPreRoll()
            }
        case .speechEnded:
            if open == .vad {
                actions.append(.end)
                open = nil
            }
        case nil:
            if open == .vad, detector.isSpeaking { actions.append(.send(frame)) }
        }
        if open == nil { keep(frame) }
        return actions
    }

    private mutating func keep(_ frame: [Int16]) {
        guard maxPreRollSamples > 0 else { return }
        preRoll.append(frame)
        preRollSamples += frame.count
        while let oldest = preRoll.first, preRollSamples - oldest.count >= maxPreRollSamples {
            preRoll.removeFirst()
            preRollSamples -= oldest.count
        }
    }

    private mutating func clearPreRoll() {
        preRoll = []
        preRollSamples = 0
    }
}
