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
    private let inbox: DeviceInbox<DeviceInbound>
    private let replies: any DeviceReplies
    private let ml: MLEndpointPool
    private let users: UserDirectory
    private let outbox: Outbox
    /// The settings in force; ``update(_:)`` replaces them (new sessions and checks use them at once).
    public var configuration: DialogConfiguration { settings.withLock { $0 } }
    private let settings: Mutex<DialogConfiguration>
    private let logger: Logger
    private let registeredUser: @Sendable (DeviceID) -> String?
    private let live: (any LiveSink)?
    private let activity: DeviceActivity?
    private let sessions = Mutex<[SessionKey: DialogSession]>([:])
    private let metrics = DialogMetrics()
    private let rejectLog: RateLimitedLog
    /// Audio messages from inside the hub (its microphone), handled like a device's.
    private let local = AsyncStream.makeStream(of: DeviceMessage.self, bufferingPolicy: .bufferingOldest(512))
    /// Responses waiting for another attempt while the device broker is unreachable.
    private let retries = AsyncStream.makeStream(of: PendingResponse.self, bufferingPolicy: .bufferingOldest(1024))

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

    // MARK: - Messages

    /// Handles one audio message; returns a session that has just started (to be run).
    /// `fromHub`: the message comes from inside the hub (its microphone), not from the broker; only
    /// such messages may speak as `hub.id`, and their user is the configured one.
    func handle(_ inbound: DeviceInbound, fromHub: Bool = false) -> DialogSession? {
        let message: DeviceMessage
        switch inbound {
        case .message(let received):
            message = received
        case .invalid(.notADeviceTopic(let escaped)):
            reject(nil, "invalid_topic", "ignored a message on an unexpected topic", detail: escaped)
            return nil
        case .invalid(.invalidDeviceID(let escaped)):
            reject(nil, "invalid_device_id", "rejected audio with an invalid device id", detail: escaped)
            return nil
        }
        let device = message.device
        if !fromHub, device.rawValue == configuration.hubID {
            // The hub's own sessions (and its speaker) are the microphone's: no device may speak as the hub.
            reject(device, "reserved_device_id", "ignored audio from the broker under the hub's own id (hub.id)", detail: "")
            return nil
        }
        guard message.payload.count <= configuration.maxAudioMessageBytes else {
            reject(device, "too_large", "rejected an audio message over dialog.maxAudioMessageBytes", detail: "\(message.payload.count) bytes")
            respond(.error(
                device: device, code: .malformedAudio,
                message: "audio message of \(message.payload.count) bytes exceeds the limit of \(configuration.maxAudioMessageBytes)"))
            return nil
        }
        switch AudioMessage.parse(message.payload) {
        case .failure(let error):
            reject(device, "malformed", "rejected a malformed audio message", detail: error.description)
            respond(.error(device: device, code: .malformedAudio, message: error.description))
            return nil
        case .success(.start(let start)):
            activity?.record(device, channel: "audio", atMs: Int64(Date().timeIntervalSince1970 * 1000))
            return begin(device: device, start: start, fromHub: fromHub)
        case .success(.frame(let session, let sequence, let payload)):
            guard let dialog = sessions.withLock({ $0[SessionKey(device: device, session: session)] }) else {
                reject(device, "unknown_session", "dropped an audio frame of no open session", detail: "\(session)")
                return nil
            }
            let outcome = dialog.accept(sequence: sequence, payload: payload)
            if let limit = outcome.limit {
                reject(device, "session_limit", "stopped an audio session at one of its budgets", detail: limit)
                return nil
            }
            metrics.frames.increment()
            if let live, live.wantsAudio {
                live.publish(.audio(device: device, session: session, sequence: sequence, payload: payload))
            }
            if outcome.late > 0 { metrics.lateFrames.increment(by: Int64(outcome.late)) }
            if outcome.gaps > 0 { metrics.gaps.increment(by: Int64(outcome.gaps)) }
            if outcome.convertErrors > 0 { metrics.convertErrors.increment(by: Int64(outcome.convertErrors)) }
            return nil
        case .success(.end(let session, let lastSequence)):
            guard let dialog = sessions.withLock({ $0[SessionKey(device: device, session: session)] }) else {
                reject(device, "unknown_session", "dropped the end of no open session", detail: "\(session)")
                return nil
            }
            let outcome = dialog.end(lastSequence: lastSequence)
            if outcome.gaps > 0 { metrics.gaps.increment(by: Int64(outcome.gaps)) }
            if outcome.convertErrors > 0 { metrics.convertErrors.increment(by: Int64(outcome.convertErrors)) }
            return nil
        }
    }

    /// A start message: a new session unless one with this id is open (a redelivered start is
    /// ignored) or a limit is reached.
    private func begin(device: DeviceID, start: AudioMessage.AudioStart, fromHub: Bool) -> DialogSession? {
        let key = SessionKey(device: device, session: start.session)
        if !fromHub, configuration.verifiesUserID, let claimed = start.userID {
            let registered = registeredUser(device)
            if claimed != registered {
                // A device speaks for the user it is registered to and no other (CONTRACTS.md §1):
                // otherwise one stolen device password would let it act as anyone, blocked users included.
                let why = registered == nil
                    ? "the device is not registered to a user, so it cannot name one"
                    : "the start names a user other than the one the device is registered to"
                reject(device, "user_mismatch", "refused an audio session", detail: why)
                respond(.error(device: device, code: .userMismatch, message: why, session: start.session))
                return nil
            }
        }
        let session: DialogSession
        do {
            session = try DialogSession(device: device, start: start, configuration: configuration)
        } catch {
            reject(device, "unsupported", "refused an audio session", detail: error.message)
            respond(.error(device: device, code: error.code, message: error.message, session: start.session))
            return nil
        }
        enum Admission { case admitted, duplicate, tooMany(String) }
        let admission = sessions.withLock { sessions -> Admission in
            if sessions[key] != nil { return .duplicate }
            if sessions.count >= configuration.maxSessions {
                return .tooMany("the gateway has \(sessions.count) sessions open (dialog.maxSessions)")
            }
            let forDevice = sessions.keys.filter { $0.device == device }.count
            if forDevice >= configuration.maxSessionsPerDevice {
                return .tooMany("device has \(forDevice) sessions open (dialog.maxSessionsPerDevice)")
            }
            sessions[key] = session
            return .admitted
        }
        switch admission {
        case .duplicate:
            logger.debug("ignored a repeated session start", metadata: ["device.id": "\(device)", "session.id": "\(start.session)"])
            return nil
        case .tooMany(let why):
            reject(device, "too_many_sessions", "refused an audio session", detail: why)
            respond(.error(device: device, code: .tooManySessions, message: why, session: start.session))
            return nil
        case .admitted:
            metrics.sessionsStarted.increment()
            live?.publish(.sessionStarted(device: device, session: start.session, codec: start.codec.rawValue, sampleRate: Int(start.sampleRate)))
            logger.debug(
                "dialog session started",
                metadata: [
                    "device.id": "\(device)", "session.id": "\(start.session)", "audio.codec": "\(start.codec.rawValue)",
                    "audio.sample_rate": "\(start.sampleRate)", "ml.codec": "\(session.outputCodec.rawValue)",
                ])
            return session
        }
    }

    private func reject(_ device: DeviceID?, _ reason: String, _ message: String, detail: String) {
        metrics.rejected(reason)
        var metadata: Logger.Metadata = ["reason": "\(reason)", "detail": "\(detail)"]
        if let device { metadata["device.id"] = "\(device)" }
        logger.debug("\(message)", metadata: metadata)
        rejectLog.warning(key: reason, count: 1, "\(message)", metadata: metadata)
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
    private func release(_ session: DialogSession) {
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

    /// Answers the device once; false when the session was answered already (timed out).
    @discardableResult
    private func conclude(_ session: DialogSession, with response: DeviceResponse) -> Bool {
        guard session.conclude() else { return false }
        release(session)
        respond(response)
        return true
    }

    /// Ends the session with an `ERROR` (once) and counts it under its code.
    private func conclude(_ session: DialogSession, error code: DeviceResponse.ErrorCode, _ message: String) {
        guard conclude(session, with: .error(device: session.device, code: code, message: message, session: session.start.session)) else { return }
        metrics.ended(code.rawValue)
    }

    /// Sends a response; while the device broker is unreachable it is tried again
    /// (`dialog.responseAttempts` in all, 250 ms, 500 ms, … apart), then counted as lost.
    private func respond(_ response: DeviceResponse) {
        live?.publish(.response(response))
        attempt(PendingResponse(response: response, attempt: 1))
    }

    struct PendingResponse: Sendable {
        var response: DeviceResponse
        var attempt: Int
    }

    private func attempt(_ pending: PendingResponse) {
        do {
            try replies.send(pending.response)
            metrics.responses.increment()
        } catch {
            guard pending.attempt < configuration.responseAttempts else {
                lost(pending.response, error)
                return
            }
            var next = pending
            next.attempt += 1
            if case .enqueued = retries.continuation.yield(next) { return }
            lost(pending.response, error)
        }
    }

    /// Runs the retries of ``respond(_:)``, each after its delay, until ``run()`` ends.
    private func retryResponses() async {
        await withDiscardingTaskGroup { group in
            for await pending in retries.stream {
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(250 * (pending.attempt - 1)))
                    self.attempt(pending)
                }
            }
        }
    }

    private func lost(_ response: DeviceResponse, _ error: any Error) {
        metrics.responsesLost.increment()
        logger.warning(
            "could not publish a response to the device",
            metadata: ["device.id": "\(response.device)", "response.type": "\(response.kind.rawValue)", "error": "\(error)"])
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
