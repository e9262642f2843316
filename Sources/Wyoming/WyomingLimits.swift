/// What one connection may cost: every length the server announces is checked against these before a byte of
/// it is buffered, so a hostile or broken server costs a failed call, never memory.
public struct WyomingLimits: Sendable, Hashable {
    /// The longest header line (JSON and its `\n`). Default 64 KiB; the reference package's lines are < 200 bytes.
    public var maxHeaderBytes: Int
    /// The most `data_length` bytes of one event. Default 1 MiB (an `info` listing many voices stays well below).
    public var maxDataBytes: Int
    /// The most `payload_length` bytes of one event. Default 4 MiB (one audio chunk is a few KiB).
    public var maxPayloadBytes: Int
    /// The most PCM bytes `synthesize` gathers for one reply. Default 16 MiB (over 8 minutes at 16 kHz, 16 bit).
    public var maxAudioBytes: Int
    /// The most events one call reads (partials, chunks, detections). Default 100,000.
    public var maxEventsPerCall: Int

    public init(
        maxHeaderBytes: Int = 64 * 1024,
        maxDataBytes: Int = 1024 * 1024,
        maxPayloadBytes: Int = 4 * 1024 * 1024,
        maxAudioBytes: Int = 16 * 1024 * 1024,
        maxEventsPerCall: Int = 100_000
    ) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxDataBytes = maxDataBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.maxAudioBytes = maxAudioBytes
        self.maxEventsPerCall = maxEventsPerCall
    }
}
