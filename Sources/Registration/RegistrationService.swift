import DeviceLink
import Foundation
import GatewayCore
import Logging
import Metrics
import Outbox
import Reporting
import ServiceLifecycle
import Synchronization

/// Takes the devices' registration requests (CONTRACTS.md §1) from the device edge
/// (``DeviceLink/registrations``: its registration connection, persistent session, so a request
/// sent while the gateway restarts is kept by the broker), runs the registration saga, stores a
/// `DeviceRegistered` event (key = the user id) and answers `REGISTRATION_RESULT`
/// (``DeviceReplies``). At start, sagas a crash cut short are resumed first and their devices
/// answered.
///
/// Before a saga starts, a request must pass, in this order (each refusal is `rejected` with a
/// reason, counted in `gateway.registration.rejected.total{reason}` and logged, rate-limited): a
/// well-formed body; the rate limits (per device and hub-wide, ``RegistrationRateLimit``); an id
/// that is not reserved (``RegistrationConfiguration/reservedIDs``, `hub.id`); room in the queue
/// (``RegistrationQueue``). In its turn (one at a time per device), a request id seen before is
/// answered from its record only when device, user, type and premium match (else `requestId
/// reused`); a device the local registry has under another request is `already registered`; and a
/// broker account the local registry did not create is never touched (`reserved device id`).
/// Sagas of different devices run concurrently up to `registration.maxConcurrent`. A periodic
/// maintenance (and one at start) wipes kept passwords and prunes old records.
public final class RegistrationService: Service, Sendable {
    private let inbox: DeviceInbox<DeviceInbound>
    private let replies: any DeviceReplies
    private let accounts: any DeviceAccounts
    private let saga: RegistrationSaga
    private let outbox: Outbox
    private let hubID: String
    private let local: LocalRegistry?
    private let settings: RegistrationConfiguration
    private let activity: DeviceActivity?
    private let logger: Logger
    private let limits: Mutex<RegistrationRateLimit>
    private let queue: RegistrationQueue
    private let rejectLog: RateLimitedLog

    /// - Parameters:
    ///   - inbox: the registration requests (``DeviceLink/registrations``).
    ///   - replies: where results go (``DeviceLink/replies``).
    ///   - accounts: the broker's device accounts (``DeviceLink/accounts``).
    ///   - local: the local registry (whose devices are not "foreign" broker accounts).
    ///   - settings: reserved ids, rate limits, concurrency and retention.
    public init(
        inbox: DeviceInbox<DeviceInbound>, replies: any DeviceReplies, accounts: any DeviceAccounts, saga: RegistrationSaga, outbox: Outbox, hubID: String,
        local: LocalRegistry? = nil, settings: RegistrationConfiguration = RegistrationConfiguration(statePath: ":memory:"),
        activity: DeviceActivity? = nil, logger: Logger
    ) {
        self.activity = activity
        self.inbox = inbox
        self.replies = replies
        self.accounts = accounts
        self.saga = saga
        self.outbox = outbox
        self.hubID = hubID
        self.local = local
        self.settings = settings
        self.logger = logger
        limits = Mutex(
            RegistrationRateLimit(
                perDevicePerMinute: settings.maxRequestsPerDevicePerMinute, perMinute: settings.maxRequestsPerMinute, at: .now))
        queue = RegistrationQueue(maxConcurrent: settings.maxConcurrent, limit: settings.queueLimit)
        rejectLog = RateLimitedLog(logger: logger, interval: .seconds(10))
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.maintainPeriodically() }
            // Resume what a crash cut short once the broker can be told about accounts.
            while !accounts.isReady, !Task.isCancelled, !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: .milliseconds(100))
            }
            for (requestID, outcome) in await saga.resumeUnfinished() {
                if let record = await saga.record(requestID) {
                    publish(await finish(record.request, outcome), device: record.request.device)
                }
            }
            await withTaskCancellationOrGracefulShutdownHandler {
                // Each admitted request runs in its own task; the queue bounds how many there are.
                await withDiscardingTaskGroup { requests in
                    for await batch in inbox {
                        for inbound in batch {
                            guard case .message(let message) = inbound else {
                                Self.countRejection("invalid_topic")
                                continue
                            }
                            activity?.record(message.device, channel: "register", atMs: Int64(Date().timeIntervalSince1970 * 1000))
                            switch intake(device: message.device, payload: message.payload) {
                            case .answered(let result):
                                publish(result, device: message.device)
                            case .admitted(let request, let admission):
                                requests.addTask { self.publish(await self.perform(request, admission), device: request.device) }
                            }
                        }
                    }
                }
            } onCancelOrGracefulShutdown: {
                self.inbox.pauseReading()
            }
            group.cancelAll()
        }
    }

    /// Registers `device` from a request body of CONTRACTS.md §1 (`{"requestId", "userId", "type",
    /// "premium"}`), as `device/{id}/register` does; the admin API's `POST /api/devices` comes here
    /// too (the same limits apply). Returns what the device is told (`REGISTRATION_RESULT`); the
    /// device is told it as well.
    public func registerAndAnswer(device: DeviceID, payload: [UInt8]) async -> RegistrationResult {
        let result: RegistrationResult
        switch intake(device: device, payload: payload) {
        case .answered(let answer): result = answer
        case .admitted(let request, let admission): result = await perform(request, admission)
        }
        publish(result, device: device)
        return result
    }

    enum Intake {
        case answered(RegistrationResult)
        case admitted(RegistrationRequest, RegistrationQueue.Admission)
    }

    /// What is decided at once, without waiting: the body, the rate limits, reserved ids, room
    /// in the queue.
    func intake(device: DeviceID, payload: [UInt8]) -> Intake {
        let request: RegistrationRequest
        switch Self.parse(payload, device: device) {
        case .success(let parsed):
            request = parsed
        case .failure(let problem):
            return .answered(reject(device: device, requestID: problem.requestID, reason: problem.message, counted: "invalid_request"))
        }
        switch limits.withLock({ $0.admit(device.rawValue, at: .now) }) {
        case .allowed: break
        case .device, .hub:
            return .answered(reject(device: device, requestID: request.requestID, reason: RegistrationResult.rateLimited, counted: "rate_limited"))
        }
        if device.rawValue == hubID || settings.reservedIDs.contains(device.rawValue) {
            return .answered(reject(device: device, requestID: request.requestID, reason: RegistrationResult.reservedID, counted: "reserved_id"))
        }
        guard let admission = queue.admit(device.rawValue) else {
            return .answered(reject(device: device, requestID: request.requestID, reason: RegistrationResult.busy, counted: "busy"))
        }
        recordQueue()
        logger.info(
            "registration requested",
            metadata: ["device.id": "\(request.device)", "request.id": "\(request.requestID)", "user.id": "\(request.userID)"])
        return .admitted(request, admission)
    }

    /// Waits for the request's turn (one at a time per device), checks what needs the records
    /// and the broker, and runs the saga.
    func perform(_ request: RegistrationRequest, _ admission: RegistrationQueue.Admission) async -> RegistrationResult {
        await admission.wait()
        defer {
            admission.finish()
            recordQueue()
        }
        let device = request.device
        // A request id seen before: the saga answers from the record, or rejects a reuse.
        if await saga.record(request.requestID) == nil {
            if let known = await local?.device(device) {
                // The record of this very request was pruned: registered, the credentials are gone.
                if known.requestID == request.requestID, known.userID == request.userID, known.type == request.type, known.premium == request.premium {
                    return RegistrationResult(
                        requestId: request.requestID, status: .registered, username: device.rawValue, reason: RegistrationResult.credentialsNotKept)
                }
                return reject(device: device, requestID: request.requestID, reason: RegistrationResult.alreadyRegistered, counted: "already_registered")
            }
            // Not in the local registry: an account on the broker is someone else's (the gateway's,
            // the provisioning identity, one made by hand); it is never changed.
            do {
                if try await accounts.account(device.rawValue) != nil {
                    return reject(device: device, requestID: request.requestID, reason: RegistrationResult.reservedID, counted: "reserved_id")
                }
            } catch {
                logger.warning("cannot check the broker account; registration not started", metadata: ["device.id": "\(device)", "error": "\(error)"])
                Counter(label: "gateway.registration.outcomes.total", dimensions: [("outcome", "failed")]).increment()
                return RegistrationResult(requestId: request.requestID, status: .failed, reason: "the broker cannot be asked about the account: \(error)")
            }
        }
        return await finish(request, await saga.register(request))
    }

    private func reject(device: DeviceID, requestID: String?, reason: String, counted: String) -> RegistrationResult {
        Self.countRejection(counted)
        rejectLog.warning(
            key: counted, count: 1, "rejected a registration request",
            metadata: ["device.id": "\(device)", "request.id": "\(requestID ?? "")", "reason": "\(reason)"])
        return RegistrationResult(requestId: requestID, status: .rejected, reason: reason)
    }

    /// Registrations running and waiting, as gauges.
    private func recordQueue() {
        let counts = queue.counts
        Self.runningGauge.record(counts.running)
        Self.waitingGauge.record(counts.waiting)
    }

    static let runningGauge = Gauge(label: "gateway.registration.running")
    static let waitingGauge = Gauge(label: "gateway.registration.queue.waiting")

    static func countRejection(_ reason: String) {
        Counter(label: "gateway.registration.rejected.total", dimensions: [("reason", reason)]).increment()
    }

    /// Wipes kept passwords and prunes old records: at start, then every
    /// ``maintenanceInterval``.
    private func maintainPeriodically() async {
        let interval = Self.maintenanceInterval(settings)
        while !Task.isCancelled {
            await saga.maintain(
                nowMs: Int64(Date().timeIntervalSince1970 * 1000), passwordRetention: settings.passwordRetention,
                recordRetention: settings.recordRetention)
            try? await Task.sleep(for: interval)
        }
    }

    /// Half the shorter retention, between 100 ms and a minute: a password outlives its
    /// retention by at most this.
    static func maintenanceInterval(_ settings: RegistrationConfiguration) -> Duration {
        min(.seconds(60), max(.milliseconds(100), min(settings.passwordRetention, settings.recordRetention) / 2))
    }

    /// Registrations whose compensation kept failing (`needs-attention`): a person must clean up
    /// what the record lists in `compensationFailed`.
    public var needingAttention: [SagaStore.Record] {
        get async {
            var records: [SagaStore.Record] = []
            for id in await saga.needingAttention {
                if let record = await saga.record(id) { records.append(record) }
            }
            return records
        }
    }

    /// Stores the `DeviceRegistered` event (once) and says what to answer.
    private func finish(_ request: RegistrationRequest, _ outcome: RegistrationOutcome) async -> RegistrationResult {
        switch outcome {
        case .rejected(let reason):
            return reject(device: request.device, requestID: request.requestID, reason: reason, counted: "requestid_reused")
        case .registered(let password, let registryID):
            var data = JSONText(capacity: 256)
            data.field("deviceId", string: request.device.rawValue)
            data.field("userId", string: request.userID)
            data.field("type", string: request.type)
            data.field("premium", bool: request.premium)
            data.field("registryId", string: registryID)
            data.field("requestId", string: request.requestID)
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let event = DeviceEvent(device: request.device, eventID: "registered-\(request.requestID)", type: "DeviceRegistered", timestamp: now, data: data.finish())
            _ = await outbox.append([
                OutboxRecord(
                    device: request.device.rawValue, eventID: event.eventID, key: request.userID, receivedAt: now,
                    payload: UpstreamEnvelope.encode(event, hubID: hubID, key: request.userID, receivedAt: now))
            ])
            Counter(label: "gateway.registration.outcomes.total", dimensions: [("outcome", "registered")]).increment()
            return RegistrationResult(
                requestId: request.requestID, status: .registered, username: request.device.rawValue, password: password, registryId: registryID,
                reason: password == nil ? RegistrationResult.credentialsNotKept : nil)
        case .failed(let reason):
            Counter(label: "gateway.registration.outcomes.total", dimensions: [("outcome", "failed")]).increment()
            return RegistrationResult(requestId: request.requestID, status: .failed, reason: reason)
        case .needsAttention(let reason):
            Counter(label: "gateway.registration.outcomes.total", dimensions: [("outcome", "needs_attention")]).increment()
            return RegistrationResult(requestId: request.requestID, status: .failed, reason: reason)
        case .inProgress:
            return RegistrationResult(requestId: request.requestID, status: .pending, reason: "the registration is under way")
        }
    }

    private func publish(_ result: RegistrationResult, device: DeviceID) {
        let response = result.response(device: device)
        do {
            try replies.send(response)
        } catch {
            // The device asks again with the same request id and is answered from the record.
            logger.warning("could not publish a registration result", metadata: ["device.id": "\(response.device)", "error": "\(error)"])
        }
    }

    struct Problem: Error {
        var message: String
        var requestID: String?
    }

    /// `{"requestId", "userId", "type", "premium"}`.
    static func parse(_ payload: [UInt8], device: DeviceID) -> Result<RegistrationRequest, Problem> {
        guard payload.count <= 4096, let json = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else {
            return .failure(Problem(message: "not a JSON object of at most 4096 bytes"))
        }
        let requestID = json["requestId"] as? String
        guard let requestID, (1...64).contains(requestID.count), requestID.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            // Echoed (escaped, at most 64 characters) so the device can match the answer.
            return .failure(Problem(message: "requestId must be 1–64 characters of letters, digits, - and _", requestID: requestID.map { String($0.prefix(64)) }))
        }
        guard let userID = json["userId"] as? String, (1...128).contains(userID.count), !userID.contains("/") else {
            return .failure(Problem(message: "userId must be 1–128 characters without /", requestID: requestID))
        }
        guard let type = json["type"] as? String, (1...64).contains(type.count), !type.contains("/") else {
            return .failure(Problem(message: "type must be 1–64 characters without /", requestID: requestID))
        }
        let premium = json["premium"] as? Bool ?? false
        return .success(RegistrationRequest(requestID: requestID, device: device, userID: userID, type: type, premium: premium))
    }

}
