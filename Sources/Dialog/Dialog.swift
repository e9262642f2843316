import DeviceLink
import Foundation
import GatewayCore
import Logging
import MLLink
import Metrics
import Outbox
import Reporting
import ServiceLifecycle
import Synchronization
import Users

/// Device voice dialogs (CONTRACTS.md §1 audio and responses, §3 the ML service, §4 users).
///
/// Takes the devices' audio messages from the device edge (``DeviceLink/audio``: its dialog
/// connection, clean session, so a dialog does not outlive the gateway), runs one session per
/// `(device, session id)`, streams the audio to the ML service while it arrives, and answers the
/// device (``DeviceReplies``, its `response` topic): `TRANSCRIPT_PARTIAL` for
/// partial results (`dialog.partials`), then `DIALOG_RESPONSE` — or an `ERROR` when the session
/// cannot finish. Each answered dialog becomes a `DialogCompleted` event in the outbox, keyed by
/// the user, so it reaches the cloud like any other event.
///
/// The sequence of one session:
/// 1. start (`0x01`): limits checked, the user looked up (in the background), the stream to
///    the ML service opened (endpoint picked by ``MLEndpointPool``);
/// 2. frames (`0x02`): reordered within `dialog.reorderWindow`, converted to `ml.codec`, sent;
/// 3. end (`0x03`): the rest flushed, the stream's send side closed; the final transcript comes
///    back;
/// 4. the user decides: blocked → `DIALOG_RESPONSE` saying so; unknown → `users.unknownUserPolicy`;
/// 5. `AnalyzeIntent` → `DIALOG_RESPONSE` → `DialogCompleted` into the outbox.
public final class Dialog: Service, Sendable {
    let inbox: DeviceInbox<DeviceInbound>
    let replies: any DeviceReplies
    let ml: MLEndpointPool
    let users: UserDirectory
    let outbox: Outbox
    /// The settings in force; ``update(_:)`` replaces them (new sessions and checks use them at once).
    public var configuration: DialogConfiguration { settings.withLock { $0 } }
    let settings: Mutex<DialogConfiguration>
    let logger: Logger
    let registeredUser: @Sendable (DeviceID) -> String?
    let live: (any LiveSink)?
    let activity: DeviceActivity?
    let sessions = Mutex<[SessionKey: DialogSession]>([:])
    let metrics = DialogMetrics()
    let rejectLog: RateLimitedLog
    /// Audio messages from inside the hub (its microphone), handled like a device's.
    let local = AsyncStream.makeStream(of: DeviceMessage.self, bufferingPolicy: .bufferingOldest(512))
    /// Responses waiting for another attempt while the device broker is unreachable.
    let retries = AsyncStream.makeStream(of: PendingResponse.self, bufferingPolicy: .bufferingOldest(1024))

    /// - Parameters:
    ///   - inbox: the devices' audio messages (``DeviceLink/audio``).
    ///   - replies: where answers go (``DeviceLink/replies``).
    ///   - registeredUser: the user a device is registered to (the local registry), for a start
    ///     without `userId` (CONTRACTS.md §1); nil when registration is off.
    ///   - live: where sessions, answers and (when wanted) audio are shown as they happen.
    ///   - activity: where a device starting a session is noted (admin API).
    public init(
        inbox: DeviceInbox<DeviceInbound>, replies: any DeviceReplies, ml: MLEndpointPool, users: UserDirectory, outbox: Outbox, configuration: DialogConfiguration,
        registeredUser: @escaping @Sendable (DeviceID) -> String? = { _ in nil }, live: (any LiveSink)? = nil, activity: DeviceActivity? = nil, logger: Logger
    ) {
        self.activity = activity
        self.registeredUser = registeredUser
        self.live = live
        self.inbox = inbox
        self.replies = replies
        self.ml = ml
        self.users = users
        self.outbox = outbox
        settings = Mutex(configuration)
        self.logger = logger
        rejectLog = RateLimitedLog(logger: logger, interval: .seconds(10))
    }

    /// Sessions under way.
    public var activeSessions: Int { sessions.withLock { $0.count } }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { outer in
            outer.addTask { await self.retryResponses() }
            await withDiscardingTaskGroup { group in
                group.addTask {
                    await withDiscardingTaskGroup { localSessions in
                        for await message in self.local.stream {
                            if let session = self.handle(.message(message), fromHub: true) {
                                localSessions.addTask { await self.run(session) }
                            }
                        }
                    }
                }
                await withTaskCancellationOrGracefulShutdownHandler {
                    for await batch in inbox {
                        for inbound in batch {
                            if let session = handle(inbound) {
                                group.addTask { await self.run(session) }
                            }
                        }
                    }
                } onCancelOrGracefulShutdown: {
                    self.inbox.pauseReading()
                    self.local.continuation.finish()
                    for session in self.sessions.withLock({ Array($0.values) }) {
                        session.abort(.shuttingDown, "the gateway is shutting down")
                    }
                }
            }
            // Every session has answered its device; the last retries run out, then the device
            // edge closes the connection.
            retries.continuation.finish()
            await outer.waitForAll()
        }
        logger.info("dialogs stopped")
    }

    /// Applies new settings (configuration reload): limits, timeouts, partials, the ML codec and
    /// the unknown-user policy. Sessions under way keep the codec they started with.
    public func update(_ configuration: DialogConfiguration) {
        settings.withLock { $0 = configuration }
    }

    /// Takes an audio message of CONTRACTS.md §1 (start, frame, end) from inside the hub, as if
    /// `device` had sent it on its audio channel: same checks, limits and answers. Returns false
    /// when it was not taken (the gateway is stopping, or 512 messages wait already).
    @discardableResult
    public func submit(audio payload: [UInt8], from device: DeviceID) -> Bool {
        if case .enqueued = local.continuation.yield(DeviceMessage(device: device, channel: .audio, payload: payload)) { return true }
        return false
    }

    // MARK: - Sessions

    /// Runs a session to its answer, watching its idle and total time meanwhile.
    private func run(_ session: DialogSession) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.converse(session) }
            group.addTask { await self.watch(session) }
            await group.next()
            group.cancelAll()
        }
        session.audio.fail(MLError(.unavailable, "the session is over"))
        release(session)
    }

    /// Takes an answered session out of the table before its answer goes out, so a device that
    /// starts its next session on hearing the answer is not refused by `dialog.maxSessionsPerDevice`
    /// (the `DialogCompleted` event is still being stored). Later frames of it are "unknown session".
    func release(_ session: DialogSession) {
        sessions.withLock { sessions in
            if sessions[session.key] === session { sessions.removeValue(forKey: session.key) }
        }
    }

    /// Ends the session with an `ERROR` when it idles past `dialog.sessionTimeoutMs`, outlives
    /// `dialog.maxSessionSeconds`, or the gateway stops. Returns only then (else it is cancelled).
    private func watch(_ session: DialogSession) async {
        while !Task.isCancelled {
            if let (code, message) = session.expiry(timeout: configuration.sessionTimeout, maxDuration: configuration.maxSessionDuration) {
                session.audio.fail(MLError(.unavailable, message))
                if session.conclude() {
                    release(session)
                    metrics.ended(code.rawValue)
                    logger.info(
                        "dialog session closed",
                        metadata: ["device.id": "\(session.device)", "session.id": "\(session.start.session)", "reason": "\(code.rawValue)", "detail": "\(message)"])
                    respond(.error(device: session.device, code: code, message: message, session: session.start.session))
                }
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Transcription, user, intent, answer, event.
    private func converse(_ session: DialogSession) async {
        let device = session.device
        let sessionID = session.start.session
        // The user the start names, else the one the device is registered to.
        let userID = session.start.userID ?? registeredUser(device)
        async let lookup = lookUp(userID)

        let transcript = TranscriptCollector()
        let endpoint: MLEndpoint
        do {
            endpoint = try await ml.transcribe(configuration: session.streamConfiguration, audio: session.audio) { result in
                session.touch()
                if result.isFinal {
                    transcript.addFinal(result)
                } else if self.configuration.partials, !session.isConcluded {
                    self.respond(DeviceResponse(device: device, kind: .transcriptPartial, payload: Conversation.partial(session: sessionID, result)))
                }
            }
        } catch {
            guard !Task.isCancelled else { return }
            fail(session, error)
            return
        }
        guard !Task.isCancelled else { return }
        let transcribedAt = ContinuousClock.now
        let (text, transcriptConfidence) = transcript.result
        guard !text.isEmpty else {
            conclude(session, error: .noTranscript, "the ML service returned no final transcript")
            return
        }

        // The user: the one the device named, looked up while the audio streamed.
        let user = await lookup
        let lookupDoneAt = ContinuousClock.now
        var conversation = Conversation(
            session: session, transcript: text, transcriptConfidence: transcriptConfidence, endpoint: endpoint,
            userID: userID, user: user, unknownUserPolicy: configuration.unknownUserPolicy)
        if conversation.wantsIntent {
            do {
                conversation.answer(
                    try await ml.analyzeIntent(
                        text: text,
                        context: ["language": session.start.language, "hubId": configuration.hubID, "sessionId": sessionID.uuidString.lowercased()],
                        deviceID: device.rawValue, userID: conversation.record.userID))
            } catch {
                guard !Task.isCancelled else { return }
                fail(session, error)
                return
            }
        }
        conversation.time(
            DialogRecord.Timings(session: session, transcribedAt: transcribedAt, lookupDoneAt: lookupDoneAt, analyzedAt: .now))
        guard conclude(session, with: conversation.response) else { return }
        let record = conversation.record
        metrics.ended(record.outcome)
        if let audioEnd = session.endReceivedAt {
            metrics.latency.recordNanoseconds(Self.nanoseconds(audioEnd.duration(to: .now)))
        }
        logger.info(
            "dialog answered",
            metadata: [
                "device.id": "\(device)", "session.id": "\(sessionID)", "user.id": "\(record.userID)", "user.source": "\(record.userSource)",
                "dialog.outcome": "\(record.outcome)", "dialog.intent": "\(record.intent)", "ml.endpoint": "\(endpoint)",
                "dialog.total_ms": "\(record.timings.totalMs)",
            ])
        let outcomes = await outbox.append([conversation.completedEvent(hubID: configuration.hubID, atMs: Int64(Date().timeIntervalSince1970 * 1000))])
        if outcomes.first == .rejectedStoreFull {
            metrics.eventsRejected.increment()
            logger.warning("outbox full: DialogCompleted event not stored", metadata: ["device.id": "\(device)", "session.id": "\(sessionID)"])
        }
    }

    private func lookUp(_ userID: String?) async -> UserLookup? {
        guard let userID else { return nil }
        return await users.lookup(userID)
    }

    private func fail(_ session: DialogSession, _ error: MLError) {
        if let (code, message) = session.abortReason {
            // The stream failed because the session was stopped (a budget, shutdown): say why.
            conclude(session, error: code, message)
            return
        }
        let code: DeviceResponse.ErrorCode = error.code == .unavailable ? .mlUnavailable : .mlFailed
        logger.warning(
            "dialog failed at the ML service",
            metadata: ["device.id": "\(session.device)", "session.id": "\(session.start.session)", "error": "\(error)"])
        conclude(session, error: code, error.description)
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}

/// Final results of one stream, joined in order.
final class TranscriptCollector: Sendable {
    private let state = Mutex<(texts: [String], confidence: Float)>(([], 0))

    func addFinal(_ result: Transcription) {
        state.withLock { state in
            let text = result.text.trimmingCharacters(in: .whitespacesAndNewlines)
            if !text.isEmpty { state.texts.append(text) }
            state.confidence = result.confidence
        }
    }

    var result: (text: String, confidence: Float) {
        state.withLock { ($0.texts.joined(separator: " "), $0.confidence) }
    }
}
