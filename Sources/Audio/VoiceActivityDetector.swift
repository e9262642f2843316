import Glibc

/// Why a speech segment ended.
public enum VADEndReason: Sendable, Equatable {
    /// The level stayed below the threshold for the hangover time.
    case silence
    /// The segment reached ``VADConfiguration/maxSegmentSeconds``.
    case maximumLength
}

/// A change in voice activity reported by ``VoiceActivityDetector/process(_:)``.
public enum VADEvent: Sendable, Equatable {
    /// Speech started. `preRoll` holds the segment's first frames, oldest first: up to
    /// ``VADConfiguration/preRollMs`` from before the speech, then the speech that confirmed it, ending
    /// with the frame just passed to `process`.
    case speechStarted(preRoll: [[Int16]])
    /// The segment is over. The frame just passed to `process` is **not** part of it.
    case speechEnded(reason: VADEndReason)
}

/// An energy voice-activity detector with an adaptive noise floor, for mono 16-bit frames (20 ms).
///
/// Guarantees:
/// - Frames are the unit: each frame is speech when its RMS level in dBFS is at least
///   ``VADConfiguration/thresholdDB`` above the noise floor and at least
///   ``VADConfiguration/minimumLevelDBFS``. Digital silence and noise below that minimum never start a
///   segment.
/// - A segment starts after ``VADConfiguration/minSpeechMs`` of consecutive speech and ends after
///   ``VADConfiguration/hangoverMs`` without speech or at ``VADConfiguration/maxSegmentSeconds``. After
///   a cut at the maximum length, the next speech frame opens the next segment at once.
/// - Every frame belongs to at most one segment, and a segment's frames are exactly: the
///   `preRoll` of ``VADEvent/speechStarted(preRoll:)``, then each later frame for which `process`
///   returns `nil` while ``isSpeaking`` is true. Nothing is delivered twice and nothing in between is
///   skipped, so a consumer can stream a segment as it happens:
///
/// ```swift
/// var vad = VoiceActivityDetector()
/// for try await frame in captureStream {
///     switch vad.process(frame) {
///     case .speechStarted(let preRoll)?:
///         session = try await open(); for f in preRoll { try await session.send(f) }
///     case .speechEnded?:
///         try await session.close()
///     case nil:
///         if vad.isSpeaking { try await session.send(frame) }
///     }
/// }
/// ```
///
/// A value type with no locks: one consumer feeds it.
public struct VoiceActivityDetector: Sendable {
    public let configuration: VADConfiguration

    /// Whether a segment is open (between `.speechStarted` and `.speechEnded`).
    public private(set) var isSpeaking = false
    /// The current noise-floor estimate in dBFS (`nil` before the first frame).
    public private(set) var noiseFloorDBFS: Double?
    /// The level of the last frame, in dBFS.
    public private(set) var lastLevelDBFS: Double = VoiceActivityDetector.silenceDBFS

    /// Levels of all-zero frames are reported as this, not as -infinity.
    public static let silenceDBFS: Double = -120

    /// Frames kept while idle: pre-roll, then the speech frames not yet confirmed.
    private var pending: [[Int16]] = []
    private var pendingPreRollSamples = 0
    private var candidateSamples = 0
    private var segmentSamples = 0
    private var silentSamples = 0
    /// Set when a segment was cut at the maximum length: speech that goes on opens the next segment at
    /// its first speech frame, without waiting for the minimum speech again.
    private var resumesAtOnce = false

    private var minSpeechSamples: Int { configuration.sampleRate * configuration.minSpeechMs / 1000 }
    private var hangoverSamples: Int { configuration.sampleRate * configuration.hangoverMs / 1000 }
    private var preRollSamples: Int { configuration.sampleRate * configuration.preRollMs / 1000 }
    private var maxSegmentSamples: Int { Int(Double(configuration.sampleRate) * configuration.maxSegmentSeconds) }

    public init(configuration: VADConfiguration = VADConfiguration()) {
        self.configuration = configuration
    }

    /// The RMS level of `frame` in dBFS (0 dBFS is a full-scale square wave); ``silenceDBFS`` for silence.
    public static func levelDBFS(_ frame: [Int16]) -> Double {
        guard !frame.isEmpty else { return silenceDBFS }
        var sum = 0.0
        for sample in frame {
            let value = Double(sample)
            sum += value * value
        }
        let rms = (sum / Double(frame.count)).squareRoot()
        guard rms > 0 else { return silenceDBFS }
        return Swift.max(20 * log10(rms / 32768), silenceDBFS)
    }

    /// Feeds one frame and returns the change it caused, if any (see the type's documentation for
    /// which frames belong to a segment).
    public mutating func process(_ frame: [Int16]) -> VADEvent? {
        let level = Self.levelDBFS(frame)
        lastLevelDBFS = level
        let floor = noiseFloorDBFS ?? level
        let isSpeech = level >= floor + configuration.thresholdDB && level >= configuration.minimumLevelDBFS
        // Inside a segment every frame adapts slowly: quiet frames there are mostly pauses between words.
        adaptFloor(level: level, from: floor, slowly: isSpeech || isSpeaking)

        if isSpeaking {
            if segmentSamples + frame.count > maxSegmentSamples {
                endSegment()
                resumesAtOnce = true
                keepWhileIdle(frame, isSpeech: isSpeech)
                return .speechEnded(reason: .maximumLength)
            }
            silentSamples = isSpeech ? 0 : silentSamples + frame.count
            if silentSamples > hangoverSamples {
                endSegment()
                keepWhileIdle(frame, isSpeech: false)
                return .speechEnded(reason: .silence)
            }
            segmentSamples += frame.count
            return nil
        }

        keepWhileIdle(frame, isSpeech: isSpeech)
        guard isSpeech, resumesAtOnce || candidateSamples >= Swift.max(minSpeechSamples, 1) else { return nil }
        let preRoll = pending
        resumesAtOnce = false
        pending = []
        pendingPreRollSamples = 0
        isSpeaking = true
        segmentSamples = preRoll.reduce(0) { $0 + $1.count }
        candidateSamples = 0
        silentSamples = 0
        return .speechStarted(preRoll: preRoll)
    }

    /// Forgets any open segment and pending frames (the floor estimate is kept).
    public mutating func reset() {
        endSegment()
        resumesAtOnce = false
    }

    private mutating func endSegment() {
        isSpeaking = false
        pending = []
        pendingPreRollSamples = 0
        candidateSamples = 0
        segmentSamples = 0
        silentSamples = 0
    }

    /// While idle: speech frames accumulate as candidates; a non-speech frame turns all pending frames
    /// into pre-roll, trimmed to the newest `preRollMs`.
    private mutating func keepWhileIdle(_ frame: [Int16], isSpeech: Bool) {
        pending.append(frame)
        if isSpeech {
            candidateSamples += frame.count
            return
        }
        candidateSamples = 0
        resumesAtOnce = false
        pendingPreRollSamples = pending.reduce(0) { $0 + $1.count }
        while let oldest = pending.first, pendingPreRollSamples - oldest.count >= preRollSamples {
            pending.removeFirst()
            pendingPreRollSamples -= oldest.count
        }
        if preRollSamples == 0 {
            pending = []
            pendingPreRollSamples = 0
        }
    }

    private mutating func adaptFloor(level: Double, from floor: Double, slowly: Bool) {
        // The floor never sinks below the lowest level that could still count as speech minus the
        // threshold: one frame of digital silence must not make ordinary room noise look like speech.
        let tracked = Swift.max(level, configuration.minimumLevelDBFS - configuration.thresholdDB)
        guard noiseFloorDBFS != nil else {
            noiseFloorDBFS = tracked
            return
        }
        if tracked < floor {
            noiseFloorDBFS = tracked
        } else {
            let rate = slowly ? configuration.speechFloorAdaptation : configuration.floorAdaptation
            noiseFloorDBFS = floor + rate * (tracked - floor)
        }
    }
}
