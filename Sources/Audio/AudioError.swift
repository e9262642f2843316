import CALSA
import Glibc

/// An error from the ALSA side of the audio module (capture, playback, configuration).
///
/// Guarantees: `description` names the device, says what went wrong in words and what a person can
/// do about it (a command to run, a device name to try); `alsaErrno` keeps ALSA's errno for logs;
/// `isRetriable` says whether opening or reading again later can succeed without changing anything.
/// Callers never need to import the C module to act on it.
public struct AudioError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong, independent of ALSA's errno.
    public enum Code: String, Sendable, Equatable, CustomStringConvertible {
        /// The PCM name is unknown, or names a card or device this host does not have.
        case deviceMissing
        /// Another process holds the device (hw devices are exclusive). Retriable.
        case deviceBusy
        /// The process may not open the device (not in group `audio`).
        case permissionDenied
        /// The ALSA configuration text or the requested rate/channels/format/period is not usable.
        case configuration
        /// The device went away while in use (USB microphone unplugged). Retriable: reopen it.
        case disconnected
        /// A capture overrun could not be recovered. Retriable: reopen the device.
        case overrun
        /// A playback underrun could not be recovered. Retriable: reopen the device.
        case underrun
        /// The stream was suspended (system sleep) and could not be resumed. Retriable.
        case suspended
        /// Any other read or write failure reported by ALSA. Retriable.
        case io
        /// The PCM was closed before this call.
        case closed

        public var description: String { rawValue }
    }

    /// What went wrong.
    public let code: Code
    /// ALSA's errno, positive (`ENOENT`, `EBUSY`, `EPIPE`, ...); 0 when the error did not come from ALSA.
    public let alsaErrno: Int32
    /// The PCM name the error is about (`"default"`, `"hw:1,0"`, a PCM from a configuration text).
    public let device: String
    /// The sentence a person reads: what failed, ALSA's words for it, and what to do.
    public let message: String

    /// Creates an error; `message` should say what to do, not only what happened.
    public init(code: Code, alsaErrno: Int32 = 0, device: String, message: String) {
        self.code = code
        self.alsaErrno = alsaErrno
        self.device = device
        self.message = message
    }

    /// Whether trying again later (reopening the device, reading again) can succeed unchanged.
    public var isRetriable: Bool {
        switch code {
        case .deviceBusy, .disconnected, .overrun, .underrun, .suspended, .io: true
        case .deviceMissing, .permissionDenied, .configuration, .closed: false
        }
    }

    public var description: String { message }
}

extension AudioError {
    /// ALSA's own text for a (negative or positive) ALSA error code.
    static func alsaText(_ code: Int32) -> String {
        String(cString: snd_strerror(code < 0 ? code : -code))
    }

    /// The error for a failed `snd_pcm_open_lconf`.
    static func openFailed(device: String, stream: ALSAStreamDirection, code rc: Int32) -> AudioError {
        let errno = abs(rc)
        let listCommand = stream == .capture ? "arecord -L" : "aplay -L"
        let what = "ALSA \(stream) device '\(device)'"
        switch errno {
        case ENOENT, ENODEV, ENXIO:
            return AudioError(
                code: .deviceMissing, alsaErrno: errno, device: device,
                message: "\(what) not found (\(alsaText(rc))): check `\(listCommand)` for the PCM names this host knows and `\(stream == .capture ? "arecord" : "aplay") -l` for its cards, then fix the configured device name (or the file its PCM definition names)"
            )
        case EBUSY:
            return AudioError(
                code: .deviceBusy, alsaErrno: errno, device: device,
                message: "\(what) is busy (\(alsaText(rc))): another process holds it (`fuser -v /dev/snd/*`); stop it or share the device through a dsnoop/dmix PCM. Retrying later may succeed"
            )
        case EACCES, EPERM:
            return AudioError(
                code: .permissionDenied, alsaErrno: errno, device: device,
                message: "\(what) cannot be opened (\(alsaText(rc))): the gateway's user must be in group 'audio' (`usermod -aG audio <user>`, then restart the service)"
            )
        default:
            return AudioError(
                code: .configuration, alsaErrno: errno, device: device,
                message: "\(what) could not be opened (\(alsaText(rc))): check its definition in /etc/asound.conf, ~/.asoundrc or the configuration text; `\(listCommand)` lists the known PCMs"
            )
        }
    }

    /// The error for a failed read or write that recovery did not fix.
    static func transferFailed(device: String, stream: ALSAStreamDirection, code rc: Int32) -> AudioError {
        let errno = abs(rc)
        let verb = stream == .capture ? "Reading from" : "Writing to"
        switch errno {
        case ENODEV, ENXIO:
            return AudioError(
                code: .disconnected, alsaErrno: errno, device: device,
                message: "ALSA device '\(device)' went away (\(alsaText(rc))): was the USB audio device unplugged? Reconnect it; the device is reopened on the next attempt"
            )
        case EPIPE:
            return AudioError(
                code: stream == .capture ? .overrun : .underrun, alsaErrno: errno, device: device,
                message: "ALSA device '\(device)' had an \(stream == .capture ? "overrun" : "underrun") that could not be recovered (\(alsaText(rc))): reopen the device; if it repeats, the host is too loaded or the buffer too small"
            )
        case ESTRPIPE:
            return AudioError(
                code: .suspended, alsaErrno: errno, device: device,
                message: "ALSA device '\(device)' was suspended and did not resume (\(alsaText(rc))): reopen the device"
            )
        case EBADFD:
            return AudioError(
                code: .io, alsaErrno: errno, device: device,
                message: "ALSA device '\(device)' is in a bad state (\(alsaText(rc))): reopen the device"
            )
        default:
            return AudioError(
                code: .io, alsaErrno: errno, device: device,
                message: "\(verb) ALSA device '\(device)' failed (\(alsaText(rc))): reopen the device; check `dmesg` for USB or driver errors if it repeats"
            )
        }
    }

    static func closed(device: String) -> AudioError {
        AudioError(
            code: .closed, device: device,
            message: "ALSA device '\(device)' was already closed: open a new capture or playback to use it again"
        )
    }
}
