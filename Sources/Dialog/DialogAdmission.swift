import DeviceLink
import Foundation
import GatewayCore
import Logging

/// What happens to each audio message as it arrives: its checks (topic, the hub's id, size,
/// format), the admission of a new session (user, limits) and the frames and end of an open one.
/// Every refusal is counted (`gateway.dialog.audio.rejected.total{reason}`), logged (rate-limited) and, where
/// the device can be told, answered with an `ERROR`.
extension Dialog {
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
    func begin(device: DeviceID, start: AudioMessage.AudioStart, fromHub: Bool) -> DialogSession? {
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

    func reject(_ device: DeviceID?, _ reason: String, _ message: String, detail: String) {
        metrics.rejected(reason)
        var metadata: Logger.Metadata = ["reason": "\(reason)", "detail": "\(detail)"]
        if let device { metadata["device.id"] = "\(device)" }
        logger.debug("\(message)", metadata: metadata)
        rejectLog.warning(key: reason, count: 1, "\(message)", metadata: metadata)
    }
}
