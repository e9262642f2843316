import Foundation
import GatewayCore
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import NIOCore
import Synchronization

/// The `/live` WebSocket stream (README "Live stream"): dialog events, hub status and, when
/// `live.audio` is on and a client asks, the dialogs' audio.
///
/// A client connects to `/live?device=<id or *>[&audio=1]` and may change its subscription with
/// a text message `{"subscribe": "<id or *>", "audio": true|false}`. Every message carries `seq`
/// (per feed, increasing; a gap tells the client it missed some) and `ts` (ms since the epoch).
/// Text messages are JSON objects `{"seq", "ts", "type", "deviceId", ...}` with `type` one of
/// `session_started`, `transcript_partial`, `dialog_response`, `error`, `status`. Audio is a
/// binary message: 8-byte big-endian `seq`, the 16-byte session UUID, 4-byte big-endian frame
/// sequence, then the frame as the device sent it (codec as in its `session_started`).
///
/// Each client has a queue of `live.queueDepth` messages; a client that lets it fill is closed
/// with code 1008 ("client too slow") instead of making the gateway buffer without bound.
public final class LiveFeed: LiveSink, Sendable {
    private let configuration: AdminConfiguration
    private let logger: Logger
    private let state = Mutex(State())
    /// The last answers, for the status page (kept whether or not anyone watches).
    let recent = RecentDialogs()
    private let dropped = Counter(label: "gateway.live.clients.dropped.total", dimensions: [("reason", "slow")])
    private let refused = Counter(label: "gateway.live.clients.dropped.total", dimensions: [("reason", "too_many")])

    enum Outgoing: Sendable {
        case text(String)
        case binary([UInt8])
    }

    final class Client: Sendable {
        let id: Int
        let continuation: AsyncStream<Outgoing>.Continuation
        let subscription: Mutex<(device: String, audio: Bool)>
        let tooSlow = Atomic<Bool>(false)
        /// Whether it was sent a whole status (with every device) yet.
        let hadStatus = Atomic<Bool>(false)

        init(id: Int, continuation: AsyncStream<Outgoing>.Continuation, device: String, audio: Bool) {
            self.id = id
            self.continuation = continuation
            subscription = Mutex((device, audio))
        }

        func wants(_ device: String) -> Bool {
            subscription.withLock { $0.device == "*" || $0.device == device }
        }

        func wantsAudio(_ device: String) -> Bool {
            subscription.withLock { $0.audio && ($0.device == "*" || $0.device == device) }
        }
    }

    struct State {
        var clients: [Int: Client] = [:]
        var nextClient = 0
        var sequence: UInt64 = 0
        var audioListeners = 0
    }

    public init(configuration: AdminConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    public var clientCount: Int { state.withLock { $0.clients.count } }

    public var wantsAudio: Bool {
        configuration.liveAudio && state.withLock { $0.audioListeners > 0 }
    }

    // MARK: - Producers

    public func publish(_ event: LiveEvent) {
        switch event {
        case .response(let response):
            let type: String
            switch response.kind {
            case .transcriptPartial: type = "transcript_partial"
            case .dialogResponse: type = "dialog_response"
            case .error: type = "error"
            // Carries the device's broker password: never on the live stream.
            case .registrationResult: return
            }
            if response.kind != .transcriptPartial {
                recent.record(.init(
                    ts: response.timestamp, deviceId: response.device.rawValue, type: type,
                    payload: String(decoding: response.payload, as: UTF8.self)))
            }
            broadcast(device: response.device.rawValue) { seq in
                var json = Self.header(seq: seq, type: type, device: response.device.rawValue)
                json.field("payload", rawJSON: response.payload)
                return json.finish()
            }
        case .sessionStarted(let device, let session, let codec, let sampleRate):
            broadcast(device: device.rawValue) { seq in
                var json = Self.header(seq: seq, type: "session_started", device: device.rawValue)
                json.field("session", string: session.uuidString.lowercased())
                json.field("codec", string: codec)
                json.field("sampleRate", int: Int64(sampleRate))
                return json.finish()
            }
        case .audio(let device, let session, let sequence, let payload):
            guard configuration.liveAudio else { return }
            let targets = state.withLock { state -> [Client] in
                state.clients.values.filter { $0.wantsAudio(device.rawValue) }
            }
            guard !targets.isEmpty else { return }
            let seq = nextSequence()
            var frame: [UInt8] = []
            frame.reserveCapacity(28 + payload.count)
            withUnsafeBytes(of: seq.bigEndian) { frame.append(contentsOf: $0) }
            withUnsafeBytes(of: session.uuid) { frame.append(contentsOf: $0) }
            withUnsafeBytes(of: sequence.bigEndian) { frame.append(contentsOf: $0) }
            frame.append(contentsOf: payload)
            for client in targets { deliver(.binary(frame), to: client) }
        }
    }

    /// Hub status for every client (whatever its device filter), e.g. outbox depth and link state.
    /// A client's first status message is rendered by `full`, later ones by `delta` (the device
    /// list: whole at first, then only what changed), so a page with thousands of devices is not
    /// sent all of them every two seconds.
    public func publishStatus(full: (inout JSONText) -> Void, delta: (inout JSONText) -> Void) {
        let targets = state.withLock { Array($0.clients.values) }
        guard !targets.isEmpty else { return }
        let seq = nextSequence()
        var texts: (full: String?, delta: String?) = (nil, nil)
        func render(_ fields: (inout JSONText) -> Void) -> String {
            var json = Self.header(seq: seq, type: "status", device: nil)
            fields(&json)
            return String(decoding: json.finish(), as: UTF8.self)
        }
        for client in targets {
            if client.hadStatus.exchange(true, ordering: .relaxed) {
                if texts.delta == nil { texts.delta = render(delta) }
                deliver(.text(texts.delta!), to: client)
            } else {
                if texts.full == nil { texts.full = render(full) }
                deliver(.text(texts.full!), to: client)
            }
        }
    }

    /// The same status for every client.
    public func publishStatus(_ fields: (inout JSONText) -> Void) {
        publishStatus(full: fields, delta: fields)
    }

    private func broadcast(device: String, _ render: (UInt64) -> [UInt8]) {
        let targets = state.withLock { state in state.clients.values.filter { $0.wants(device) } }
        guard !targets.isEmpty else { return }
        let text = String(decoding: render(nextSequence()), as: UTF8.self)
        for client in targets { deliver(.text(text), to: client) }
    }

    private func nextSequence() -> UInt64 {
        state.withLock { state in
            state.sequence += 1
            return state.sequence
        }
    }

    private func deliver(_ message: Outgoing, to client: Client) {
        guard !client.tooSlow.load(ordering: .relaxed) else { return }
        if case .dropped = client.continuation.yield(message) {
            // The queue is full: this client reads slower than events come. Close it.
            if !client.tooSlow.exchange(true, ordering: .relaxed) {
                dropped.increment()
                logger.notice("closing a live client that reads too slowly", metadata: ["live.client": "\(client.id)"])
                client.continuation.finish()
            }
        }
    }

    static func header(seq: UInt64, type: String, device: String?) -> JSONText {
        var json = JSONText(capacity: 256)
        json.field("seq", int: Int64(seq))
        json.field("ts", int: Int64(Date().timeIntervalSince1970 * 1000))
        json.field("type", string: type)
        if let device { json.field("deviceId", string: device) }
        return json
    }

    // MARK: - Clients

    func addRoutes(to router: Router<AdminServer.Context>) {
        router.ws("live") { _, _ in
            .upgrade([:])
        } onUpgrade: { [self] inbound, outbound, context in
            let query = context.request.uri.queryParameters
            let device = query.get("device").flatMap { $0 == "*" || DeviceID($0) != nil ? $0 : nil } ?? "*"
            let audio = query.get("audio") == "1" || query.get("audio") == "true"
            try await serve(inbound: inbound, outbound: outbound, device: device, audio: audio)
        }
    }

    private func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, device: String, audio: Bool) async throws {
        let (stream, continuation) = AsyncStream.makeStream(of: Outgoing.self, bufferingPolicy: .bufferingOldest(configuration.liveQueueDepth))
        let client: Client? = state.withLock { state in
            guard state.clients.count < configuration.liveMaxClients else { return nil }
            state.nextClient += 1
            let client = Client(id: state.nextClient, continuation: continuation, device: device, audio: audio && configuration.liveAudio)
            state.clients[client.id] = client
            if client.subscription.withLock({ $0.audio }) { state.audioListeners += 1 }
            return client
        }
        guard let client else {
            refused.increment()
            try await outbound.close(.unknown(1013), reason: "too many live clients (live.maxClients)")
            return
        }
        defer { remove(client) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await message in inbound.messages(maxSize: 4096) {
                    guard case .text(let text) = message else { continue }
                    self.resubscribe(client, text)
                }
                continuation.finish()
            }
            group.addTask {
                for await message in stream {
                    switch message {
                    case .text(let text): try await outbound.write(.text(text))
                    case .binary(let bytes): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
                    }
                }
                if client.tooSlow.load(ordering: .relaxed) {
                    try await outbound.close(.policyViolation, reason: "client too slow")
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// `{"subscribe": "<id or *>", "audio": true|false}`; anything else is ignored.
    private func resubscribe(_ client: Client, _ text: String) {
        guard let json = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return }
        let device = (json["subscribe"] as? String).flatMap { $0 == "*" || DeviceID($0) != nil ? $0 : nil }
        let audio = (json["audio"] as? Bool).map { $0 && configuration.liveAudio }
        state.withLock { state in
            client.subscription.withLock { subscription in
                let before = subscription.audio
                if let device { subscription.device = device }
                if let audio { subscription.audio = audio }
                if before != subscription.audio { state.audioListeners += subscription.audio ? 1 : -1 }
            }
        }
    }

    private func remove(_ client: Client) {
        state.withLock { state in
            if state.clients.removeValue(forKey: client.id) != nil, client.subscription.withLock({ $0.audio }) {
                state.audioListeners -= 1
            }
        }
        client.continuation.finish()
    }
}
