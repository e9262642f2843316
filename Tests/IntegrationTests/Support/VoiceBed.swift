import BrokerTestSupport
import Foundation
import MLFake

/// A `TestBed` for voice: fake ML servers (and dead ports) as `ml.endpoints`, a fake user service
/// as `users.baseUrl`, a recorder of `device/+/response`, and audio devices.
final class VoiceBed {
    let bed: TestBed
    let responses: TopicRecorder
    let users: FakeUserService
    let ml: [FakeMLService]
    let speech: [Int16]

    private init(bed: TestBed, responses: TopicRecorder, users: FakeUserService, ml: [FakeMLService], speech: [Int16]) {
        self.bed = bed
        self.responses = responses
        self.users = users
        self.ml = ml
        self.speech = speech
    }

    /// - Parameters:
    ///   - endpoints: ML endpoint ports, in order (fake servers' ports and dead ports mixed).
    static func start(
        in sandbox: Sandbox, ml: [FakeMLService], endpoints: [Int], users: FakeUserService? = nil,
        overrides: GatewayConfig = [:]
    ) async throws -> VoiceBed {
        let users = users ?? FakeUserService()
        if users.port == 0 { try await users.start() }
        let list = endpoints.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ")
        let defaults: GatewayConfig = [
            "ml.endpoints": .raw("[\(list)]"),
            "ml.healthCheckIntervalSeconds": 1,
            "users.baseUrl": .string(users.baseURL),
            "users.timeoutMs": 500,
            "dialog.sessionTimeoutMs": 3000,
        ]
        let bed = try await TestBed.start(in: sandbox, overrides: defaults.merging(overrides))
        let responses = TopicRecorder("responses", brokerPort: bed.deviceBroker.port, filters: ["device/+/response"], in: sandbox)
        try await responses.start()
        let speech = try TestSpeech.read(TestSpeech.writeFile(in: sandbox))
        return VoiceBed(bed: bed, responses: responses, users: users, ml: ml, speech: speech)
    }

    /// The common case: one scripted ML endpoint (stop it at the end of the test).
    static func startWithOneEndpoint(
        in sandbox: Sandbox, users: FakeUserService? = nil, overrides: GatewayConfig = [:]
    ) async throws -> (VoiceBed, FakeMLService) {
        let ml = FakeMLService(name: "ml")
        let port = try await ml.start()
        return (try await start(in: sandbox, ml: [ml], endpoints: [port], users: users, overrides: overrides), ml)
    }

    var opusFrames: [[UInt8]] { get throws { try TestSpeech.opusFrames(speech) } }

    func device(_ id: String) async throws -> AudioDevice {
        let device = AudioDevice(id, brokerPort: bed.deviceBroker.port)
        try await device.connect()
        return device
    }

    /// Responses to `device` (envelopes), in arrival order.
    func responses(for device: String) -> [Response] {
        responses.messages.filter { $0.topic == "device/\(device)/response" }.compactMap(Response.init)
    }

    /// Waits for the answer (`DIALOG_RESPONSE` or `ERROR`) of one session.
    @discardableResult
    func answer(device: String, session: UUID, timeout: Duration = .seconds(20)) async throws -> Response {
        let id = session.uuidString.lowercased()
        do {
            let messages = try await responses.waitUntil("the answer to session \(id)", timeout: timeout) { messages in
                messages.compactMap(Response.init).contains { $0.isAnswer && $0.session == id }
            }
            return messages.compactMap(Response.init).first { $0.isAnswer && $0.session == id }!
        } catch let error as HarnessError {
            throw HarnessError("\(error)\n\(bed.gateway.logTail(lines: 40))")
        }
    }

    /// One `device/{id}/response` envelope.
    struct Response: CustomStringConvertible {
        let topic: String
        let envelope: [String: Any]

        init?(_ message: RecordedMessage) {
            guard let json = message.json else { return nil }
            topic = message.topic
            envelope = json
        }

        var type: String? { envelope["type"] as? String }
        var payload: [String: Any] { envelope["payload"] as? [String: Any] ?? [:] }
        var session: String? { payload["session"] as? String }
        var isAnswer: Bool { type == "DIALOG_RESPONSE" || type == "ERROR" }
        var code: String? { payload["code"] as? String }
        var description: String { "\(topic) \(JSON.line(envelope))" }
    }
}
