import Audio
import Dispatch
import GatewayCore
import Logging
import Metrics
import Synchronization

/// Plays what the hub's own dialogs end with on `audio.playbackDevice`. The ML contract carries
/// reply text, not audio (CONTRACTS.md §3), so the hub plays an ``Earcon``: two rising notes for
/// an answer, a low one for an error, so someone at the hub knows they were heard.
///
/// It listens to dialog answers as a ``LiveSink`` (it never waits on the dialog), opens the PCM
/// for each chime and closes it after, on a queue of its own (ALSA writes block); a chime that
/// comes while one plays is skipped.
public final class HubSpeaker: LiveSink, Sendable {
    private let device: String
    private let hubID: DeviceID
    private let sampleRate: Int
    private let alsaConfiguration: String?
    private let logger: Logger
    private let queue = DispatchQueue(label: "edge-gateway.audio.playback")
    private let playing = Atomic<Bool>(false)
    private let played = Counter(label: "gateway.audio.playback.chimes")
    private let errors = Counter(label: "gateway.audio.playback.errors")

    public init(device: String, hubID: DeviceID, sampleRate: Int, alsaConfiguration: String?, logger: Logger) {
        self.device = device
        self.hubID = hubID
        self.sampleRate = sampleRate
        self.alsaConfiguration = alsaConfiguration
        self.logger = logger
    }

    public var wantsAudio: Bool { false }

    public func publish(_ event: LiveEvent) {
        guard case .response(let response) = event, response.device == hubID else { return }
        switch response.kind {
        case .dialogResponse: play(.answered)
        case .error: play(.failed)
        case .transcriptPartial, .registrationResult: return
        }
    }

    private func play(_ earcon: Earcon) {
        guard !playing.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.async { [self] in
            defer { playing.store(false, ordering: .releasing) }
            do {
                let playback = try ALSAPlayback.open(device: device, sampleRate: sampleRate, configuration: alsaConfiguration)
                defer { playback.close() }
                try playback.write(earcon.samples(sampleRate: sampleRate))
                try playback.drain()
                played.increment()
            } catch {
                errors.increment()
                logger.warning("cannot play on the playback device", metadata: ["audio.playback_device": "\(device)", "error": "\(error)"])
            }
        }
    }
}

/// Hands every event to several sinks (the live stream and the hub's speaker).
public struct LiveFanout: LiveSink {
    public let sinks: [any LiveSink]

    public init(_ sinks: [any LiveSink]) {
        self.sinks = sinks
    }

    public var wantsAudio: Bool { sinks.contains { $0.wantsAudio } }

    public func publish(_ event: LiveEvent) {
        for sink in sinks { sink.publish(event) }
    }
}
