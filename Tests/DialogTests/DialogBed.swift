import DeviceLink
import Foundation
import GatewayCore
import Logging
import MLLink
import BrokerTestSupport
import Outbox
import ServiceLifecycleTestKit
import Synchronization
import Testing
import Users

@testable import Dialog

/// The replies of a test: every ack and response the dialog sent, and sends that fail on purpose
/// (the device broker unreachable).
final class RecordingReplies: DeviceReplies {
    private let state = Mutex<(responses: [DeviceResponse], attempts: Int, failures: Int)>(([], 0, 0))

    /// The next `count` response sends fail.
    func failNext(_ count: Int) { state.withLock { $0.failures = count } }

    var responses: [DeviceResponse] { state.withLock { $0.responses } }
    var attempts: Int { state.withLock { $0.attempts } }

    func send(_ ack: DeviceAck) throws(DeviceReplyError) {}

    func send(_ response: DeviceResponse) throws(DeviceReplyError) {
        let failed = state.withLock { state in
            state.attempts += 1
            if state.failures > 0 {
                state.failures -= 1
                return true
            }
            state.responses.append(response)
            return false
        }
        if failed { throw DeviceReplyError("the device broker is unreachable (test)") }
    }

    /// Waits until `count` responses were sent; throws (with what was sent) if they are not within `limit`.
    @discardableResult
    func waitFor(_ count: Int, within limit: Duration = .seconds(10)) async throws -> [DeviceResponse] {
        try await Poll.until("\(count) responses", timeout: limit, details: { "have \(self.responses.map(\.kind))" }) {
            self.responses.count >= count
        }
        return responses
    }
}


/// A ``Dialog`` as the gateway runs it, without a broker: its audio comes from a stream (the
/// device edge's inbox), its answers go to ``RecordingReplies``, its events into a real outbox on a
/// temporary SQLite file, its ML calls to the endpoints given (none: every session is
/// `ml_unavailable`).
final class DialogBed: Sendable {
    let replies = RecordingReplies()
    let dialog: Dialog
    let outbox: Outbox
    let ml: MLEndpointPool
    private let input: AsyncStream<[DeviceInbound]>.Continuation
    private let directory: URL
    private let running: Task<Void, Never>
    private let shutdown = ShutdownSwitch()

    init(
        hubID: String = "hub-1", ml mlConfiguration: MLConfiguration = MLConfiguration(),
        registeredUser: @escaping @Sendable (DeviceID) -> String? = { _ in nil },
        configure: (inout DialogConfiguration) -> Void = { _ in }
    ) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("dialog-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var store = OutboxConfiguration(path: directory.appendingPathComponent("outbox.db").path)
        store.commitIntervalMs = 0
        store.requireSyncedClock = false
        let logger = Logger(label: "dialog-test")
        outbox = try Outbox.open(configuration: store, logger: logger)
        let (stream, input) = AsyncStream.makeStream(of: [DeviceInbound].self)
        self.input = input
        var configuration = DialogConfiguration(hubID: hubID)
        configuration.codec = .pcm
        configure(&configuration)
        ml = MLEndpointPool(configuration: mlConfiguration, logger: logger)
        let users = UserDirectory(
            configuration: UsersConfiguration(cachePath: ":memory:"), cache: try UserCache(path: ":memory:", maxEntries: 10), logger: logger)
        dialog = Dialog(
            inbox: DeviceInbox(stream, onPause: { input.finish() }), replies: replies, ml: ml, users: users, outbox: outbox,
            configuration: configuration, registeredUser: registeredUser, logger: logger)
        running = Task { [dialog, ml, shutdown] in
            await testGracefulShutdown { trigger in
                shutdown.arm(trigger)
                await withDiscardingTaskGroup { group in
                    group.addTask { await ml.run() }
                    group.addTask { try? await dialog.run() }
                }
            }
        }
    }

    /// `device` sends `message` on its audio channel.
    func send(_ message: AudioMessage, from device: String) {
        send(raw: message.bytes, from: device)
    }

    func send(raw payload: [UInt8], from device: String) {
        input.yield([.message(DeviceMessage(device: DeviceID(device)!, channel: .audio, payload: payload))])
    }

    /// A message on a topic that is not a device's audio topic.
    func sendInvalid(_ error: DeviceTopic.ParseError) {
        input.yield([.invalid(error)])
    }

    /// Stops the dialog as the gateway does at shutdown, and removes the store.
    func stop() async {
        // As the service group stops it: a graceful shutdown.
        await shutdown.pull()
        await running.value
        await outbox.close()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The events in the outbox.
    func events() async throws -> [StoredEvent] {
        try await outbox.pending(after: 0, limit: 100)
    }
}

extension AudioMessage {
    static func start(_ session: UUID, userID: String? = nil, codec: AudioStart.Codec = .pcm) -> AudioMessage {
        .start(AudioStart(session: session, codec: codec, sampleRate: 16000, channels: 1, language: "en-US", userID: userID))
    }

    /// 20 ms of 16 kHz 16-bit silence-ish PCM.
    static func frame(_ session: UUID, _ sequence: UInt32) -> AudioMessage {
        .frame(session: session, sequence: sequence, payload: [UInt8](repeating: UInt8(sequence & 0x7f), count: 640))
    }
}

extension DeviceResponse {
    /// The payload's string member `key` (the payload is the gateway's own JSON).
    func field(_ key: String) -> String? {
        (try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any])?[key] as? String
    }
}

