import CALSA
import Glibc

/// Plays interleaved 16-bit PCM (S16_LE) on an ALSA playback device.
///
/// Guarantees:
/// - It owns its `snd_pcm_t`: ``close()`` is idempotent and `deinit` closes it (dropping what was not
///   played; call ``drain()`` first to hear the end). After close, writes throw ``AudioError/Code/closed``.
/// - ``write(_:)`` hands every sample to ALSA or throws. Underruns (`-EPIPE`, the writer was too slow)
///   and suspends are recovered inside `write` and counted (``underruns``, ``suspends``).
/// - The stream really runs at ``sampleRate`` with ``channels`` (a device that cannot do them fails in
///   `open` with ``AudioError/Code/configuration``; a `plug` PCM converts instead).
/// - Playback starts once the device buffer is full, or at ``drain()`` for shorter sounds.
///
/// `write` and `drain` block: call them from a thread of their own, never from Swift's cooperative
/// pool. The class is not `Sendable`: one thread at a time uses it; ``underruns`` alone may be read
/// from anywhere.
///
/// ```swift
/// let speaker = try ALSAPlayback.open(device: "plughw:1,0")
/// try speaker.write(reply)      // [Int16], 16 kHz mono
/// try speaker.drain()           // returns when the last sample was played
/// ```
public final class ALSAPlayback {
    /// The PCM name given to `open`.
    public var device: String { pcm.device }
    public var sampleRate: Int { pcm.sampleRate }
    public var channels: Int { pcm.channels }
    /// The period the device granted, in frames.
    public var hardwarePeriodFrames: Int { pcm.hardwarePeriodFrames }
    /// The ring buffer the device granted, in frames (the playback latency once it is full).
    public var hardwareBufferFrames: Int { pcm.hardwareBufferFrames }

    /// Underruns recovered so far (the device ran out of samples and played silence). Thread-safe.
    public var underruns: Int { counters.xruns.load(ordering: .relaxed) }
    /// Suspends (system sleep) recovered so far. Thread-safe.
    public var suspends: Int { counters.suspends.load(ordering: .relaxed) }

    private let counters = ALSACounters()
    private let pcm: ALSAPCM

    private init(pcm: ALSAPCM) {
        self.pcm = pcm
    }

    deinit {
        pcm.close()
    }

    /// Opens `device` for playback as interleaved S16_LE.
    ///
    /// - Parameters:
    ///   - device: an ALSA PCM name: `"default"`, `"hw:1,0"`, `"plughw:1,0"`, `"dmix:1"`, or a PCM
    ///     defined in `configuration`.
    ///   - sampleRate: frames per second; the device must do it exactly (use a `plug` PCM to convert).
    ///   - channels: samples per frame.
    ///   - periodFrames: the period to ask the device for; 320 is 20 ms at 16 kHz.
    ///   - bufferPeriods: ring buffer size in periods (latency, and slack against underruns).
    ///   - configuration: ALSA configuration text (asoundrc syntax) merged in-process on top of the
    ///     global configuration; nothing is written to disk.
    /// - Throws: ``AudioError`` with `deviceMissing`, `deviceBusy`, `permissionDenied` or `configuration`.
    public static func open(
        device: String,
        sampleRate: Int = 16000,
        channels: Int = 1,
        periodFrames: Int = 320,
        bufferPeriods: Int = 8,
        configuration: String? = nil
    ) throws(AudioError) -> ALSAPlayback {
        let pcm = try ALSAPCM.open(
            device: device, direction: .playback, sampleRate: sampleRate, channels: channels,
            periodFrames: periodFrames, bufferPeriods: bufferPeriods, configuration: configuration
        )
        return ALSAPlayback(pcm: pcm)
    }

    /// Blocks until all of `samples` (interleaved, a whole number of frames) are in the device buffer.
    ///
    /// Underruns and suspends are recovered and counted, and the write goes on; any other failure throws.
    public func write(_ samples: [Int16]) throws(AudioError) {
        guard pcm.handle != nil else { throw AudioError.closed(device: device) }
        let channels = pcm.channels
        guard samples.count % channels == 0 else {
            throw AudioError(
                code: .configuration, alsaErrno: EINVAL, device: device,
                message: "ALSA playback on '\(device)' got \(samples.count) samples, not a whole number of \(channels)-channel frames: pass interleaved frames"
            )
        }
        let frames = samples.count / channels
        try pcm.transfer(frames: frames, counters: counters) { handle, written in
            samples.withUnsafeBufferPointer { buffer in
                snd_pcm_writei(handle, buffer.baseAddress! + written * channels, snd_pcm_uframes_t(frames - written))
            }
        }
    }

    /// Blocks until everything written has been played, then leaves the device ready for more writes.
    public func drain() throws(AudioError) {
        guard let handle = pcm.handle else { throw AudioError.closed(device: device) }
        var rc = snd_pcm_drain(handle)
        if rc == -EPIPE || rc == -ESTRPIPE {
            // The last samples ran out (or the host slept) while draining: nothing is left to play.
            rc = 0
        }
        guard rc >= 0 else { throw AudioError.transferFailed(device: device, stream: .playback, code: rc) }
        rc = snd_pcm_prepare(handle)
        guard rc >= 0 else { throw AudioError.transferFailed(device: device, stream: .playback, code: rc) }
    }

    /// Closes the device without draining. Idempotent; later writes throw ``AudioError/Code/closed``.
    public func close() {
        pcm.close()
    }
}
