/// How ``VoiceActivityDetector`` decides where speech starts and ends.
///
/// The defaults suit a 16 kHz mono hub microphone in a living room, fed 20 ms frames: speech is a frame
/// at least 10 dB above the adaptive noise floor and above -55 dBFS; 100 ms of it starts a segment,
/// which keeps the 200 ms before it and ends after 300 ms below the threshold or at 15 s.
public struct VADConfiguration: Sendable, Equatable {
    /// Samples per second of the frames (per channel). Default 16000.
    public var sampleRate: Int
    /// How far above the noise floor a frame's level must be to count as speech, in dB. Default 10.
    public var thresholdDB: Double
    /// Absolute minimum level for speech, in dBFS: quieter frames never count, so digital silence and a
    /// quiet room's hiss never start a segment however low the noise floor gets. Default -55.
    public var minimumLevelDBFS: Double
    /// Consecutive speech needed to start a segment, in ms (clicks and knocks are shorter). Default 100.
    public var minSpeechMs: Int
    /// Non-speech tolerated inside a segment before it ends, in ms (pauses between words). Default 300.
    public var hangoverMs: Int
    /// Audio kept from before the speech started and delivered with ``VADEvent/speechStarted(preRoll:)``,
    /// so the first syllable is not lost, in ms. Default 200.
    public var preRollMs: Int
    /// Longest segment, in seconds; a longer one ends with ``VADEndReason/maximumLength``. Default 15.
    public var maxSegmentSeconds: Double
    /// How fast the noise floor follows non-speech frames upward: the fraction of the gap (in dB) closed
    /// per frame. 0.05 per 20 ms frame is a time constant of about 0.4 s. Quieter frames pull the floor
    /// down at once.
    public var floorAdaptation: Double
    /// The same for speech frames and for every frame inside a segment, much slower, so a noise that suddenly got louder (a fan, a tap) is
    /// learnt as floor within seconds instead of being speech forever. 0.005 per frame ≈ 4 s.
    public var speechFloorAdaptation: Double

    public init(
        sampleRate: Int = 16000,
        thresholdDB: Double = 10,
        minimumLevelDBFS: Double = -55,
        minSpeechMs: Int = 100,
        hangoverMs: Int = 300,
        preRollMs: Int = 200,
        maxSegmentSeconds: Double = 15,
        floorAdaptation: Double = 0.05,
        speechFloorAdaptation: Double = 0.005
    ) {
        self.sampleRate = sampleRate
        self.thresholdDB = thresholdDB
        self.minimumLevelDBFS = minimumLevelDBFS
        self.minSpeechMs = minSpeechMs
        self.hangoverMs = hangoverMs
        self.preRollMs = preRollMs
        self.maxSegmentSeconds = maxSegmentSeconds
        self.floorAdaptation = floorAdaptation
        self.speechFloorAdaptation = speechFloorAdaptation
    }
}
