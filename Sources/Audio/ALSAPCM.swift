import CALSA
import Glibc
import Synchronization

/// Which way samples flow through a PCM.
enum ALSAStreamDirection: CustomStringConvertible {
    case capture
    case playback

    var alsaValue: snd_pcm_stream_t { self == .capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK }
    var description: String { self == .capture ? "capture" : "playback" }
}

/// Counters a PCM's owner updates on its own thread and anyone may read from any thread.
final class ALSACounters: Sendable {
    let xruns = Atomic<Int>(0)
    let suspends = Atomic<Int>(0)
}

/// The one owner of a `snd_pcm_t` (and of the configuration tree it was opened from), configured for
/// interleaved S16_LE. `ALSACapture` and `ALSAPlayback` wrap it; nothing else sees the handle.
///
/// Not thread-safe: one thread at a time uses it (the thread that owns the capture or playback).
final class ALSAPCM {
    let device: String
    let direction: ALSAStreamDirection
    let sampleRate: Int
    let channels: Int
    /// The period and buffer size the device granted (in frames), which may differ from the request.
    let hardwarePeriodFrames: Int
    let hardwareBufferFrames: Int

    private(set) var handle: OpaquePointer?
    /// The configuration tree a configuration text was merged into; kept until close because the
    /// PCM was built from it.
    private var config: OpaquePointer?

    private init(
        device: String, direction: ALSAStreamDirection, handle: OpaquePointer, config: OpaquePointer?,
        sampleRate: Int, channels: Int, hardwarePeriodFrames: Int, hardwareBufferFrames: Int
    ) {
        self.device = device
        self.direction = direction
        self.handle = handle
        self.config = config
        self.sampleRate = sampleRate
        self.channels = channels
        self.hardwarePeriodFrames = hardwarePeriodFrames
        self.hardwareBufferFrames = hardwareBufferFrames
    }

    deinit {
        close()
    }

    /// Opens `device` and sets hardware and software parameters; closes everything again on failure.
    static func open(
        device: String, direction: ALSAStreamDirection, sampleRate: Int, channels: Int,
        periodFrames: Int, bufferPeriods: Int, configuration: String?
    ) throws(AudioError) -> ALSAPCM {
        guard sampleRate > 0, channels > 0, periodFrames > 0, bufferPeriods >= 2 else {
            throw AudioError(
                code: .configuration, alsaErrno: EINVAL, device: device,
                message: "ALSA \(direction) on '\(device)' needs a positive rate, channel count and period and at least 2 periods per buffer (got \(sampleRate) Hz, \(channels) ch, \(periodFrames) frames, \(bufferPeriods) periods)"
            )
        }
        let config = try configuration.map { (text) throws(AudioError) in try loadConfiguration(text, device: device) }
        var pcm: OpaquePointer?
        // Non-blocking open: a busy hw device answers EBUSY at once instead of blocking the caller.
        var rc: Int32
        if let config {
            rc = snd_pcm_open_lconf(&pcm, device, direction.alsaValue, SND_PCM_NONBLOCK, config)
        } else {
            rc = snd_pcm_open(&pcm, device, direction.alsaValue, SND_PCM_NONBLOCK)
        }
        guard rc >= 0, let pcm else {
            if let config { snd_config_delete(config) }
            throw AudioError.openFailed(device: device, stream: direction, code: rc)
        }
        func fail(_ error: AudioError) -> AudioError {
            snd_pcm_close(pcm)
            if let config { snd_config_delete(config) }
            return error
        }
        rc = snd_pcm_nonblock(pcm, 0)
        guard rc >= 0 else { throw fail(.openFailed(device: device, stream: direction, code: rc)) }
        let granted: (period: Int, buffer: Int)
        do {
            granted = try setHardwareParameters(
                pcm, device: device, direction: direction, sampleRate: sampleRate, channels: channels,
                periodFrames: periodFrames, bufferPeriods: bufferPeriods
            )
            try setSoftwareParameters(pcm, device: device, direction: direction, period: granted.period, buffer: granted.buffer)
        } catch {
            throw fail(error)
        }
        rc = snd_pcm_prepare(pcm)
        guard rc >= 0 else { throw fail(.transferFailed(device: device, stream: direction, code: rc)) }
        return ALSAPCM(
            device: device, direction: direction, handle: pcm, config: config, sampleRate: sampleRate,
            channels: channels, hardwarePeriodFrames: granted.period, hardwareBufferFrames: granted.buffer
        )
    }

    /// Closes the PCM and frees the configuration tree; safe to call more than once.
    func close() {
        if let handle {
            snd_pcm_close(handle)
            self.handle = nil
        }
        if let config {
            snd_config_delete(config)
            self.config = nil
        }
    }

    /// Recovers from an xrun (`-EPIPE`), a suspend (`-ESTRPIPE`) or an interrupted call; returns
    /// ALSA's code when it could not.
    func recover(_ code: Int32) -> Int32 {
        guard let handle else { return -EBADFD }
        return snd_pcm_recover(handle, code, 1)
    }

    /// Moves `frames` frames with `step` (one `snd_pcm_readi`/`snd_pcm_writei` from frame `done`,
    /// returning ALSA's result), the way capture and playback both need it: an xrun or a suspend is
    /// recovered, counted in `counters` and the transfer goes on; any other error is thrown.
    func transfer(frames: Int, counters: ALSACounters, _ step: (_ handle: OpaquePointer, _ done: Int) -> Int) throws(AudioError) {
        var done = 0
        while done < frames {
            guard let handle else { throw AudioError.closed(device: device) }
            let result = step(handle, done)
            if result > 0 {
                done += result
                continue
            }
            let code = Int32(result)
            switch -code {
            case 0, EAGAIN:
                // Nothing yet (should not happen in blocking mode); wait for the device instead of spinning.
                _ = snd_pcm_wait(handle, 100)
            case EINTR:
                continue
            case EPIPE, ESTRPIPE:
                if -code == EPIPE {
                    counters.xruns.add(1, ordering: .relaxed)
                } else {
                    counters.suspends.add(1, ordering: .relaxed)
                }
                guard recover(code) >= 0 else { throw AudioError.transferFailed(device: device, stream: direction, code: code) }
            default:
                throw AudioError.transferFailed(device: device, stream: direction, code: code)
            }
        }
    }

    // MARK: - Setup

    /// Parses `text` (ALSA configuration syntax) on top of a private copy of the global configuration,
    /// so PCMs it defines can be opened without touching ~/.asoundrc or /etc/asound.conf.
    private static func loadConfiguration(_ text: String, device: String) throws(AudioError) -> OpaquePointer {
        var global: OpaquePointer?
        var rc = snd_config_update_ref(&global)
        guard rc >= 0, let global else {
            throw AudioError(
                code: .configuration, alsaErrno: abs(rc), device: device,
                message: "The global ALSA configuration could not be read (\(AudioError.alsaText(rc))): check /usr/share/alsa/alsa.conf, /etc/asound.conf and ~/.asoundrc with `alsactl -d` or `aplay -L`"
            )
        }
        var copy: OpaquePointer?
        rc = snd_config_copy(&copy, global)
        snd_config_unref(global)
        guard rc >= 0, let copy else {
            throw AudioError(
                code: .configuration, alsaErrno: abs(rc), device: device,
                message: "The ALSA configuration could not be copied (\(AudioError.alsaText(rc))): the host is probably out of memory"
            )
        }
        var input: OpaquePointer?
        rc = text.withCString { snd_input_buffer_open(&input, $0, strlen($0)) }
        guard rc >= 0, let input else {
            snd_config_delete(copy)
            throw AudioError(
                code: .configuration, alsaErrno: abs(rc), device: device,
                message: "The ALSA configuration text could not be read (\(AudioError.alsaText(rc)))"
            )
        }
        rc = snd_config_load(copy, input)
        snd_input_close(input)
        guard rc >= 0 else {
            snd_config_delete(copy)
            throw AudioError(
                code: .configuration, alsaErrno: abs(rc), device: device,
                message: "The ALSA configuration text for '\(device)' does not parse (\(AudioError.alsaText(rc))): check braces, quotes and `;` against the asoundrc syntax (ALSA prints the line above)"
            )
        }
        return copy
    }

    private static func setHardwareParameters(
        _ pcm: OpaquePointer, device: String, direction: ALSAStreamDirection, sampleRate: Int, channels: Int,
        periodFrames: Int, bufferPeriods: Int
    ) throws(AudioError) -> (period: Int, buffer: Int) {
        var params: OpaquePointer?
        guard snd_pcm_hw_params_malloc(&params) >= 0, let params else {
            throw AudioError(code: .configuration, alsaErrno: ENOMEM, device: device, message: "Out of memory configuring ALSA device '\(device)'")
        }
        defer { snd_pcm_hw_params_free(params) }

        func check(_ rc: Int32, _ what: String) throws(AudioError) {
            guard rc < 0 else { return }
            let plugHint = device.hasPrefix("hw:") ? ": use 'plug\(device)' so ALSA converts, or pick a device that supports it" : ": pick a device (or a plug PCM) that supports it"
            throw AudioError(
                code: .configuration, alsaErrno: abs(rc), device: device,
                message: "ALSA device '\(device)' cannot \(direction) \(what) (\(AudioError.alsaText(rc)))\(plugHint); `\(direction == .capture ? "arecord" : "aplay") -D \(device) --dump-hw-params /dev/null` lists what it can do"
            )
        }

        try check(snd_pcm_hw_params_any(pcm, params), "with any parameters")
        try check(snd_pcm_hw_params_set_access(pcm, params, SND_PCM_ACCESS_RW_INTERLEAVED), "interleaved read/write access")
        try check(snd_pcm_hw_params_set_format(pcm, params, SND_PCM_FORMAT_S16_LE), "16-bit little-endian samples (S16_LE)")
        try check(snd_pcm_hw_params_set_channels(pcm, params, UInt32(channels)), "\(channels) channel(s)")
        // Resampling in a plug PCM is fine; a hw PCM that cannot do the rate fails just below.
        _ = snd_pcm_hw_params_set_rate_resample(pcm, params, 1)
        var rate = UInt32(sampleRate)
        var dir: Int32 = 0
        try check(snd_pcm_hw_params_set_rate_near(pcm, params, &rate, &dir), "\(sampleRate) Hz")
        if Int(rate) != sampleRate {
            try check(-EINVAL, "\(sampleRate) Hz (nearest rate it offers is \(rate) Hz)")
        }
        var period = snd_pcm_uframes_t(periodFrames)
        dir = 0
        try check(snd_pcm_hw_params_set_period_size_near(pcm, params, &period, &dir), "a period of \(periodFrames) frames")
        var buffer = period * snd_pcm_uframes_t(bufferPeriods)
        try check(snd_pcm_hw_params_set_buffer_size_near(pcm, params, &buffer), "a buffer of \(buffer) frames")
        try check(snd_pcm_hw_params(pcm, params), "with these parameters (S16_LE, \(channels) ch, \(sampleRate) Hz)")
        var grantedPeriod: snd_pcm_uframes_t = 0
        var grantedBuffer: snd_pcm_uframes_t = 0
        dir = 0
        snd_pcm_hw_params_get_period_size(params, &grantedPeriod, &dir)
        snd_pcm_hw_params_get_buffer_size(params, &grantedBuffer)
        return (Int(grantedPeriod), Int(grantedBuffer))
    }

    private static func setSoftwareParameters(
        _ pcm: OpaquePointer, device: String, direction: ALSAStreamDirection, period: Int, buffer: Int
    ) throws(AudioError) {
        var params: OpaquePointer?
        guard snd_pcm_sw_params_malloc(&params) >= 0, let params else {
            throw AudioError(code: .configuration, alsaErrno: ENOMEM, device: device, message: "Out of memory configuring ALSA device '\(device)'")
        }
        defer { snd_pcm_sw_params_free(params) }
        // Capture starts with the first read; playback once the buffer is full (or on drain), as aplay does.
        let start = direction == .capture ? 1 : max(buffer - buffer % max(period, 1), period)
        var rc = snd_pcm_sw_params_current(pcm, params)
        if rc >= 0 { rc = snd_pcm_sw_params_set_start_threshold(pcm, params, snd_pcm_uframes_t(start)) }
        if rc >= 0 { rc = snd_pcm_sw_params_set_avail_min(pcm, params, snd_pcm_uframes_t(max(period, 1))) }
        if rc >= 0 { rc = snd_pcm_sw_params(pcm, params) }
        guard rc >= 0 else {
            throw AudioError(
                code: .configuration, alsaErrno: abs(rc), device: device,
                message: "ALSA device '\(device)' rejected the software parameters (start threshold \(start), avail_min \(period)) (\(AudioError.alsaText(rc))): check its PCM definition"
            )
        }
    }
}
