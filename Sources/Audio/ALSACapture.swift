import CALSA
import Glibc

/// Records interleaved 16-bit PCM (S16_LE) from an ALSA capture device, one period at a time.
///
/// Guarantees:
/// - It owns its `snd_pcm_t`: ``close()`` is idempotent and `deinit` closes it. After close,
///   ``read()`` throws ``AudioError/Code/closed``.
/// - ``read()`` returns exactly ``periodFrames`` × ``channels`` samples or throws. Overruns (`-EPIPE`)
///   and suspends (`-ESTRPIPE`) are recovered inside `read()` and counted (``overruns``,
///   ``suspends``); the samples lost in an overrun are simply missing from the stream.
/// - The opened stream really runs at ``sampleRate`` with ``channels``: a device that cannot do them
///   fails in ``open(device:sampleRate:channels:periodFrames:bufferPeriods:configuration:paced:)``
///   with a ``AudioError/Code/configuration`` error (a `plughw:`/`plug` PCM converts instead).
/// - With `paced` (the default), reads never run ahead of the wall clock by more than one period, so
///   an unclocked PCM (ALSA's `file` plugin over `null`, used in tests) behaves like a microphone.
///   A real device blocks in `snd_pcm_readi` itself, which re-anchors the pacer, so pacing never adds
///   delay there (and never fights a device clock that drifts against the system clock).
///
/// `read()` blocks: call it from a thread of its own (``CaptureStream`` does), never from Swift's
/// cooperative pool. The class is not `Sendable`: one thread at a time uses it; ``overruns`` alone may be
/// read from anywhere.
///
/// ```swift
/// let mic = try ALSACapture.open(device: "plughw:1,0")   // 16 kHz mono, 20 ms periods
/// defer { mic.close() }
/// let frame = try mic.read()                             // 320 samples
/// ```
public final class ALSACapture {
    /// The PCM name given to `open`.
    public var device: String { pcm.device }
    public var sampleRate: Int { pcm.sampleRate }
    public var channels: Int { pcm.channels }
    /// Frames per ``read()`` (the requested period; the device's own period may differ, see
    /// ``hardwarePeriodFrames``).
    public let periodFrames: Int
    /// The period the device granted, in frames.
    public var hardwarePeriodFrames: Int { pcm.hardwarePeriodFrames }
    /// The ring buffer the device granted, in frames: how long a reader may stall before an overrun.
    public var hardwareBufferFrames: Int { pcm.hardwareBufferFrames }
    /// Whether reads are held back to real time (see the type's documentation).
    public let paced: Bool

    /// Overruns recovered so far (the reader was too slow and the device dropped samples). Thread-safe.
    public var overruns: Int { counters.xruns.load(ordering: .relaxed) }
    /// Suspends (system sleep) recovered so far. Thread-safe.
    public var suspends: Int { counters.suspends.load(ordering: .relaxed) }

    let counters = ALSACounters()
    private let pcm: ALSAPCM
    private var pacer: RealTimePacer?

    private init(pcm: ALSAPCM, periodFrames: Int, paced: Bool) {
        self.pcm = pcm
        self.periodFrames = periodFrames
        self.paced = paced
        pacer = paced ? RealTimePacer(sampleRate: pcm.sampleRate, periodFrames: periodFrames) : nil
    }

    deinit {
        pcm.close()
    }

    /// Opens `device` for capture as interleaved S16_LE.
    ///
    /// - Parameters:
    ///   - device: an ALSA PCM name: `"default"`, `"hw:1,0"`, `"plughw:1,0"`, `"dsnoop:1"`, or a PCM
    ///     defined in `configuration`.
    ///   - sampleRate: frames per second; the device must do it exactly (use a `plug` PCM to convert).
    ///   - channels: samples per frame.
    ///   - periodFrames: frames per ``read()``; 320 is 20 ms at 16 kHz, the VAD and Opus frame size.
    ///   - bufferPeriods: ring buffer size in periods; how long the reader may stall before an overrun.
    ///   - configuration: ALSA configuration text (asoundrc syntax) merged in-process on top of the
    ///     global configuration, e.g. `pcm.mic { type plug; slave.pcm "hw:1,0" }`; nothing is written to
    ///     disk and other processes do not see it.
    ///   - paced: hold reads to real time (see the type's documentation).
    /// - Throws: ``AudioError`` with `deviceMissing`, `deviceBusy`, `permissionDenied` or `configuration`.
    public static func open(
        device: String,
        sampleRate: Int = 16000,
        channels: Int = 1,
        periodFrames: Int = 320,
        bufferPeriods: Int = 8,
        configuration: String? = nil,
        paced: Bool = true
    ) throws(AudioError) -> ALSACapture {
        let pcm = try ALSAPCM.open(
            device: device, direction: .capture, sampleRate: sampleRate, channels: channels,
            periodFrames: periodFrames, bufferPeriods: bufferPeriods, configuration: configuration
        )
        return ALSACapture(pcm: pcm, periodFrames: periodFrames, paced: paced)
    }

    /// Blocks until one period (``periodFrames`` frames, interleaved) has been captured and returns it.
    ///
    /// Overruns and suspends are recovered and counted, and the read goes on; any other failure throws.
    public func read() throws(AudioError) -> [Int16] {
        guard pcm.handle != nil else { throw AudioError.closed(device: device) }
        let channels = pcm.channels
        var samples = [Int16](repeating: 0, count: periodFrames * channels)
        let started = ContinuousClock.now
        try pcm.transfer(frames: periodFrames, counters: counters) { handle, filled in
            samples.withUnsafeMutableBufferPointer { buffer in
                snd_pcm_readi(handle, buffer.baseAddress! + filled * channels, snd_pcm_uframes_t(periodFrames - filled))
            }
        }
        pacer?.delivered(frames: periodFrames, readStarted: started)
        return samples
    }

    /// Closes the device. Idempotent; later reads throw ``AudioError/Code/closed``.
    public func close() {
        pcm.close()
    }
}

/// Holds an unclocked source to real time: after each read, if the audio delivered since the first read
/// is ahead of the wall clock by more than one period, sleeps the difference.
///
/// A read that had to wait for the device for at least half a period proves the device keeps time
/// itself; the pacer then re-anchors to it, so pacing never adds delay on a real device.
struct RealTimePacer {
    let sampleRate: Int
    let periodFrames: Int
    private var start: ContinuousClock.Instant?
    private var framesSinceStart = 0

    init(sampleRate: Int, periodFrames: Int) {
        self.sampleRate = sampleRate
        self.periodFrames = periodFrames
    }

    private func duration(frames: Int) -> Duration {
        .nanoseconds(Int64(frames) * 1_000_000_000 / Int64(sampleRate))
    }

    mutating func delivered(frames: Int, readStarted: ContinuousClock.Instant) {
        let now = ContinuousClock.now
        guard let start else {
            self.start = readStarted
            framesSinceStart = frames
            return
        }
        framesSinceStart += frames
        let audio = duration(frames: framesSinceStart)
        if now - readStarted >= duration(frames: periodFrames) / 2 {
            // The device blocked us: it is clocked. Follow its clock, never sleep.
            self.start = now - audio
            return
        }
        let ahead = audio - (now - start)
        let period = duration(frames: periodFrames)
        guard ahead > period else { return }
        // Stay exactly one period ahead: every later read then sleeps about one period, a steady cadence.
        Self.sleep(ahead - period)
    }

    static func sleep(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) == -1 && errno == EINTR {
            request = remaining
        }
    }
}
