import CALSA
import COpus

/// The audio C libraries the hub microphone path is built on (ALSA capture/playback, Opus), and their
/// versions; every build and CI run proves they are installed and usable.
public enum AudioLibraries {
    /// libasound's runtime version, e.g. `1.2.8`.
    public static var alsaVersion: String { String(cString: snd_asoundlib_version()) }

    /// libopus's runtime version, e.g. `libopus 1.3.1`.
    public static var opusVersion: String { String(cString: opus_get_version_string()) }

    /// Whether an Opus encoder for 16 kHz mono VOIP can be created (and is released again).
    public static func canCreateOpusEncoder(sampleRate: Int32 = 16000) -> Bool {
        var error: Int32 = 0
        guard let encoder = opus_encoder_create(sampleRate, 1, OPUS_APPLICATION_VOIP, &error), error == OPUS_OK else {
            return false
        }
        defer { opus_encoder_destroy(encoder) }
        return edge_opus_encoder_set_bitrate(encoder, 24000) == OPUS_OK
    }
}
