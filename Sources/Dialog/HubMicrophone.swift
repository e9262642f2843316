import Audio
import DeviceLink
import Foundation
import GatewayCore
import Logging
import Metrics
import Reporting
import ServiceLifecycle
import Synchronization

/// The hub's own microphone (ARCHITECTURE.md "Hub microphone"): ALSA capture on its own thread →
/// voice-activity detection → Opus (VOIP, 20 ms) → a ``Dialog`` session whose device is the hub,
/// answered on `device/{hubId}/response` like any device's.
///
/// Push-to-talk: a message on `hub/{hubId}/listen` (optional JSON `{"seconds": n}`) opens a
/// segment at once, whatever the detector says, for `n` seconds (`audio.listenSeconds`).
///
/// Wake word: with `audio.wake.endpoint` (and `audio.wake.mode` `wake` or `both`) every frame also goes to a
/// Wyoming wake-word server (``WakeWordListener``), and a detection opens a segment
/// (``MicrophoneSegmenter`` decides which source opens one).
///
/// A missing or busy capture device is logged (once per new problem) and retried with backoff up
/// to 30 s; the rest of the daemon does not notice. Overruns are recovered by the capture and
/// counted (`gateway.audio.overruns.total`).
public final class HubMicrophone: Service, Sendable {
    private let configuration: HubMicrophoneConfiguration
    private let hubID: DeviceID
    private let userID: String?
    private let dialog: Dialog
    private let listenRequests: DeviceInbox<ListenRequest>?
    private let logger: Logger
    /// A push-to-talk request waiting for the next frame: how many frames it listens for.
    private let listenRequest = Mutex<Int?>(nil)
    private let metrics = Metrics()
    /// The wake-word server's connection, when `audio.wake.endpoint` is set and the mode uses it.
    private let wake: WakeWordListener?

    struct Metrics: Sendable {
        let overruns = Counter(label: "gateway.audio.overruns.total")
        let dropped = Counter(label: "gateway.audio.frames.dropped.total")
        let captureErrors = Counter(label: "gateway.audio.capture.errors.total")
        let vadSegments = Counter(label: "gateway.audio.segments.total", dimensions: [("trigger", "vad")])
        let pushToTalkSegments = Counter(label: "gateway.audio.segments.total", dimensions: [("trigger", "push_to_talk")])
        let wakeSegments = Counter(label: "gateway.audio.segments.total", dimensions: [("trigger", "wake")])
        let ignoredDetections = Counter(label: "gateway.audio.wake.detections.ignored.total")

        func segments(_ trigger: SegmentTrigger) -> Counter {
            switch trigger {
            case .vad: vadSegments
            case .wake: wakeSegments
            case .pushToTalk: pushToTalkSegments
            }
        }
    }

    /// - Parameters:
    ///   - listenRequests: push-to-talk requests (``DeviceLink/listenRequests``); nil: none.
    ///   - userID: the user the hub's microphone speaks for (`audio.userId`); nil: the unknown-user policy.
    public init(
        configuration: HubMicrophoneConfiguration, hubID: DeviceID, userID: String?, dialog: Dialog, listenRequests: DeviceInbox<ListenRequest>?,
        logger: Logger
    ) {
        self.configuration = configuration
        self.hubID = hubID
        self.userID = userID
        self.dialog = dialog
        self.listenRequests = listenRequests
        self.logger = logger
        if configuration.wake.host != nil, configuration.wake.mode != .vad {
            wake = WakeWordListener(
                configuration: configuration.wake, sampleRate: configuration.sampleRate,
                framesPerSecond: max(1, configuration.sampleRate / Self.periodFrames), logger: logger)
        } else {
            wake = nil
        }
    }

    /// Samples per captured frame (20 ms at 16 kHz).
    static let periodFrames = 320

    /// The wake-word server's state for the status page; nil without one.
    public var wakeState: PublishedState<WakeWordListener.State>? { wake?.state }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if let listenRequests {
                group.addTask { await self.takeListenRequests(listenRequests) }
            }
            if let wake {
                group.addTask { await wake.run() }
            }
            await captureUntilShutdown()
            listenRequests?.pauseReading()
            group.cancelAll()
        }
    }

    // MARK: - Push-to-talk

    private func takeListenRequests(_ requests: DeviceInbox<ListenRequest>) async {
        for await batch in requests {
            for message in batch {
                var seconds = configuration.listenSeconds
                if !message.payload.isEmpty,
                    let json = try? JSONSerialization.jsonObject(with: Data(message.payload)) as? [String: Any],
                    let asked = json["seconds"] as? Double
                {
                    seconds = min(max(asked, 0.5), configuration.vad.maxSegmentSeconds)
                }
                // Counted in audio, not wall-clock time: a busy moment does not shorten the segment.
                let frames = max(1, Int(seconds * 1000) / 20)
                listenRequest.withLock { $0 = frames }
                logger.info("push-to-talk: listening", metadata: ["audio.listen_seconds": "\(seconds)"])
            }
        }
    }

    // MARK: - Capture

    private func captureUntilShutdown() async {
        var delay = Duration.seconds(1)
        var lastProblem: String?
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let stream = try CaptureStream.start(
                    device: configuration.device, sampleRate: configuration.sampleRate, configuration: try alsaConfiguration())
                logger.info(
                    "microphone open",
                    metadata: ["audio.device": "\(configuration.device)", "audio.sample_rate": "\(configuration.sampleRate)"])
                lastProblem = nil
                delay = .seconds(1)
                try await cancelWhenGracefulShutdown { try await self.listen(to: stream) }
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                logger.warning("the microphone stream ended; reopening", metadata: ["audio.device": "\(configuration.device)"])
            } catch {
                if Task.isCancelled || Task.isShuttingDownGracefully { return }
                metrics.captureErrors.increment()
                let problem = "\(error)"
                // Once per new problem at error; the retries of the same one at debug.
                if problem != lastProblem {
                    logger.error(
                        "the microphone cannot be used; retrying",
                        metadata: ["audio.device": "\(configuration.device)", "error": "\(problem)", "retry.in": "\(delay)"])
                    lastProblem = problem
                } else {
                    logger.debug("the microphone is still unavailable", metadata: ["error": "\(problem)"])
                }
            }
            let wait = delay
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
            delay = min(delay * 2, .seconds(30))
        }
    }

    private func alsaConfiguration() throws -> String? {
        guard let path = configuration.alsaConfigFile else { return nil }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw AudioError(
                code: .configuration, alsaErrno: 0, device: configuration.device,
                message: "cannot read audio.alsaConfigFile \(path): \(error)")
        }
    }

    /// One open segment: the session it is sent as.
    private struct Segment {
        let session = UUID()
        let encoder: OpusEncoder
        var sequence: UInt32 = 0
    }

    private func listen(to stream: CaptureStream) async throws {
        // A detection of audio from before this stream (the device was reopened) opens nothing.
        _ = wake?.takeDetection()
        var segmenter = MicrophoneSegmenter(mode: wake == nil ? .vad : configuration.wake.mode, vad: configuration.vad)
        var segment: Segment?
        var seenOverruns = 0
        var seenDropped = 0
        for try await frame in stream {
            if stream.overruns > seenOverruns {
                metrics.overruns.increment(by: Int64(stream.overruns - seenOverruns))
                logger.warning("microphone overrun (recovered)", metadata: ["audio.overruns": "\(stream.overruns)"])
                seenOverruns = stream.overruns
            }
            if stream.droppedFrames > seenDropped {
                metrics.dropped.increment(by: Int64(stream.droppedFrames - seenDropped))
                seenDropped = stream.droppedFrames
            }
            wake?.offer(frame)
            let pushToTalk = listenRequest.withLock { request in defer { request = nil }; return request }
            let detection = wake?.takeDetection()
            for action in segmenter.process(frame, pushToTalk: pushToTalk, detection: detection != nil) {
                switch action {
                case .begin(let trigger, let frames):
                    segment = try begin(trigger: trigger, frames: frames)
                    metrics.segments(trigger).increment()
                    if trigger == .wake {
                        logger.info("wake word heard: listening", metadata: ["session.id": "\(segment!.session)", "audio.wake.name": "\(detection ?? "")"])
                    }
                case .send(let samples):
                    send(samples, in: &segment)
                case .end:
                    end(&segment)
                case .ignoredDetection:
                    metrics.ignoredDetections.increment()
                    logger.debug("wake word heard while a segment is open: ignored", metadata: ["audio.wake.name": "\(detection ?? "")"])
                }
            }
        }
        end(&segment)
    }

    private func begin(trigger: SegmentTrigger, frames: Int?) throws -> Segment {
        let encoder = try OpusEncoder(
            sampleRate: Int32(configuration.sampleRate), channels: 1, bitrate: Int32(configuration.opusBitrate))
        let segment = Segment(encoder: encoder)
        let start = AudioMessage.AudioStart(
            session: segment.session, codec: .opus, sampleRate: configuration.sampleRate, channels: 1,
            language: configuration.language, userID: userID)
        dialog.submit(audio: AudioMessage.start(start).bytes, from: hubID)
        logger.debug(
            "speech segment started",
            metadata: ["session.id": "\(segment.session)", "audio.trigger": "\(trigger.rawValue)", "audio.push_to_talk": "\(frames != nil)"])
        return segment
    }

    private func send(_ frame: [Int16], in segment: inout Segment?) {
        guard var open = segment else { return }
        do {
            let packet = try open.encoder.encode(frame)
            if !dialog.submit(audio: AudioMessage.frame(session: open.session, sequence: open.sequence, payload: packet).bytes, from: hubID) {
                // The dialog is stopping or 512 messages wait: the frame is lost (a gap for the ML service).
                metrics.dropped.increment()
            }
            open.sequence += 1
            segment = open
        } catch {
            logger.error("could not encode a microphone frame", metadata: ["error": "\(error)"])
        }
    }

    private func end(_ segment: inout Segment?) {
        guard let open = segment else { return }
        segment = nil
        guard open.sequence > 0 else { return }
        dialog.submit(audio: AudioMessage.end(session: open.session, lastSequence: open.sequence - 1).bytes, from: hubID)
        logger.debug("speech segment ended", metadata: ["session.id": "\(open.session)", "audio.frames": "\(open.sequence)"])
    }
}
