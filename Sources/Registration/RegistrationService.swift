import Foundation
import GatewayCore
import Logging
import MQTT
import Metrics
import Outbox
import ServiceLifecycle

/// Takes `device/+/register` (CONTRACTS.md §1) on a connection of its own (persistent session:
/// a request sent while the gateway restarts is kept by the broker), runs the registration saga,
/// stores a `DeviceRegistered` event (key = the user id) and answers `REGISTRATION_RESULT` on
/// `device/{id}/response`. At start, sagas a crash cut short are resumed first and their devices
/// answered.
public final class RegistrationService: Service, Sendable {
    private let client: MQTTClient
    private let accounts: BrokerAccounts
    private let saga: RegistrationSaga
    private let outbox: Outbox
    private let hubID: String
    private let activity: DeviceActivity?
    private let logger: Logger

    public static let subscriptions = ["device/+/register"]

    public init(
        client: MQTTClient, accounts: BrokerAccounts, saga: RegistrationSaga, outbox: Outbox, hubID: String,
        activity: DeviceActivity? = nil, logger: Logger
    ) {
        self.activity = activity
        self.client = client
        self.accounts = accounts
        self.saga = saga
        self.outbox = outbox
        self.hubID = hubID
        self.logger = logger
    }

    public func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.accounts.run() }
            client.start()
            group.addTask { for await _ in self.client.events {} }
            // Resume what a crash cut short once the broker can be told about accounts.
            while !accounts.isConnected, !Task.isCancelled, !Task.isShuttingDownGracefully {
                try? await Task.sleep(for: .milliseconds(100))
            }
            for (requestID, outcome) in await saga.resumeUnfinished() {
                if let record = saga.record(requestID) {
                    publish(await finish(record.request, outcome), device: record.request.device)
                }
            }
            await withTaskCancellationOrGracefulShutdownHandler {
                for await batch in client.messages {
                    for message in batch { await handle(message) }
                }
            } onCancelOrGracefulShutdown: {
                self.client.pauseReading()
            }
            await client.stop()
            await accounts.stop()
            group.cancelAll()
        }
    }

    func handle(_ message: MQTTMessage) async {
        guard case .success(let topic) = DeviceTopic.parse(message.topic), topic.channel == .register else {
            Counter(label: "gateway.registration.rejected", dimensions: [("reason", "invalid_topic")]).increment()
            return
        }
        activity?.record(topic.device, channel: "register", atMs: Int64(Date().timeIntervalSince1970 * 1000))
        publish(await register(device: topic.device, payload: message.payload), device: topic.device)
    }

    /// Registers `device` from a request body of CONTRACTS.md §1 (`{"requestId", "userId", "type",
    /// "premium"}`), as `device/{id}/register` does; the admin API's `POST /api/devices` comes here
    /// too. Returns what the device is told (`REGISTRATION_RESULT`); the device is told it as well.
    public func registerAndAnswer(device: DeviceID, payload: [UInt8]) async -> RegistrationResult {
        let result = await register(device: device, payload: payload)
        publish(result, device: device)
        return result
    }

    private func register(device: DeviceID, payload: [UInt8]) async -> RegistrationResult {
        let request: RegistrationRequest
        switch Self.parse(payload, device: device) {
        case .success(let parsed):
            request = parsed
        case .failure(let problem):
            Counter(label: "gateway.registration.rejected", dimensions: [("reason", "invalid_request")]).increment()
            logger.warning("rejected a registration request", metadata: ["device.id": "\(device)", "reason": "\(problem.message)"])
            return RegistrationResult(requestId: problem.requestID, status: .rejected, reason: problem.message)
        }
        logger.info(
            "registration requested",
            metadata: ["device.id": "\(request.device)", "request.id": "\(request.requestID)", "user.id": "\(request.userID)"])
        return await finish(request, await saga.register(request))
    }

    /// Registrations whose compensation kept failing (`needs-attention`): a person must clean up
    /// what the record lists in `compensationFailed`.
    public var needingAttention: [SagaStore.Record] {
        saga.needingAttention.compactMap { saga.record($0) }
    }

    /// Stores the `DeviceRegistered` event (once) and says what to answer.
    private func finish(_ request: RegistrationRequest, _ outcome: RegistrationOutcome) async -> RegistrationResult {
        switch outcome {
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
            Counter(label: "gateway.registration.outcomes", dimensions: [("outcome", "registered")]).increment()
            return RegistrationResult(
                requestId: request.requestID, status: .registered, username: request.device.rawValue, password: password, registryId: registryID)
        case .failed(let reason):
            Counter(label: "gateway.registration.outcomes", dimensions: [("outcome", "failed")]).increment()
            return RegistrationResult(requestId: request.requestID, status: .failed, reason: reason)
        case .needsAttention(let reason):
            Counter(label: "gateway.registration.outcomes", dimensions: [("outcome", "needs_attention")]).increment()
            return RegistrationResult(requestId: request.requestID, status: .failed, reason: reason)
        case .inProgress:
            return RegistrationResult(requestId: request.requestID, status: .pending, reason: "the registration is under way")
        }
    }

    private func publish(_ result: RegistrationResult, device: DeviceID) {
        let response = result.response(device: device)
        do {
            try client.publish(topic: response.topic, payload: response.bytes, qos: 1)
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
