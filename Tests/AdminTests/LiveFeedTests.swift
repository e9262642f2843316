import BrokerTestSupport
import Foundation
import GatewayCore
import HTTPTestSupport
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import Synchronization
import Testing

@testable import Admin

/// `/live` with a real WebSocket client over loopback. A test that waits longer than a minute (a
/// message or close that never comes) fails instead of holding up the run.
@Suite(.timeLimit(.minutes(1))) struct LiveFeedTests {
    static let logger = Logger(label: "test.live")

    static func response(_ device: String, _ kind: DeviceResponse.Kind, _ payload: String) -> LiveEvent {
        .response(DeviceResponse(device: DeviceID(device)!, kind: kind, payload: Array(payload.utf8)))
    }

    /// A live feed with `configure`d settings behind a running admin server on a free port.
    static func withFeed(
        _ configure: (inout AdminConfiguration) -> Void, _ body: @Sendable (LiveFeed, Int) async throws -> Void
    ) async throws {
        var configuration = AdminConfiguration()
        configuration.port = 0
        configure(&configuration)
        let feed = LiveFeed(configuration: configuration, logger: logger)
        try await AdminServerTests.makeServer(world: .init(), live: feed).makeApplication().test(.live) { client in
            try await body(feed, try #require(client.port))
        }
    }

    /// Waits until `feed` has `count` clients (the upgrade has happened).
    static func waitForClients(_ feed: LiveFeed, _ count: Int) async throws {
        for _ in 0..<500 where feed.clientCount < count {
            try await Task.sleep(for: .milliseconds(10))
        }
        try #require(feed.clientCount == count)
    }

    /// Waits until a client's handler runs: its side of the upgrade is done. What the server sends
    /// before that can be lost by `WebSocketClient` (see the 1013 test), so tests that publish as
    /// soon as a client is there wait for this too.
    static func waitForHandler(_ started: Locked<Bool>) async throws {
        try await Poll.until("the client's handler ran") { started.withLock { $0 } }
    }

    @Test func aClientGetsTheEventsOfItsDeviceWithSequenceNumbersAndNeverARegistrationResult() async throws {
        try await Self.withFeed({ _ in }) { feed, port in
            let received = Locked<[String]>([])
            let started = Locked(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/live?device=d1", logger: Self.logger) { inbound, outbound, _ in
                        started.withLock { $0 = true }
                        for try await message in inbound.messages(maxSize: 1 << 16) {
                            guard case .text(let text) = message else { continue }
                            let count = received.withLock { $0.append(text); return $0.count }
                            if count == 3 { try await outbound.close(.normalClosure, reason: nil) }
                        }
                    }
                }
                try await Self.waitForClients(feed, 1)
                try await Self.waitForHandler(started)
                feed.publish(.sessionStarted(device: DeviceID("d1")!, session: UUID(), codec: "opus", sampleRate: 16000))
                feed.publish(Self.response("d2", .dialogResponse, #"{"transcript":"not yours"}"#))
                feed.publish(Self.response("d1", .registrationResult, #"{"password":"never shown"}"#))
                feed.publish(Self.response("d1", .transcriptPartial, #"{"text":"turn on"}"#))
                feed.publish(Self.response("d1", .dialogResponse, #"{"transcript":"turn on the light","intent":"lights.on"}"#))
                try await group.waitForAll()
            }
            let messages = try received.withLock { $0 }.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
            #expect(messages.map { $0["type"] as? String } == ["session_started", "transcript_partial", "dialog_response"])
            #expect(messages.allSatisfy { $0["deviceId"] as? String == "d1" && ($0["ts"] as? Int ?? 0) > 1_700_000_000_000 })
            let sequence = messages.compactMap { $0["seq"] as? Int }
            #expect(sequence.count == 3 && sequence == sequence.sorted() && Set(sequence).count == 3)
            #expect((messages.last?["payload"] as? [String: Any])?["intent"] as? String == "lights.on")
        }
    }

    @Test func theRunningServerSendsHubStatusToLiveClients() async throws {
        let server = AdminServerTests.makeServer(world: .init())
        let running = Task { try await server.run() }
        defer { running.cancel() }
        for _ in 0..<500 where server.boundPort == nil { try await Task.sleep(for: .milliseconds(10)) }
        let port = try #require(server.boundPort)
        let status = Locked<String?>(nil)
        try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/live", logger: Self.logger) { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: 1 << 16) {
                if case .text(let text) = message, text.contains(#""type":"status""#) {
                    status.withLock { $0 = text }
                    try await outbound.close(.normalClosure, reason: nil)
                }
            }
        }
        let text = try #require(status.withLock { $0 })
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(json["outboxDepth"] as? Int == 3)
        #expect(json["outboxBytes"] as? Int == 300)
        #expect(json["upstreamConnected"] as? Bool == false)
        #expect(json["mlEndpoints"] as? [Any] != nil)
        #expect(json["seq"] as? Int != nil)
        // The dashboard's values come along, the same as in /api/status.
        #expect((json["traffic"] as? [String: Any])?["stored"] as? Int == 7)
        #expect((json["traffic"] as? [String: Any])?["droppedByReason"] as? [String: Int] == ["capacity": 0])
        #expect((json["outbox"] as? [String: Any])?["oldestAgeSeconds"] as? Double == 12)
        #expect(((json["links"] as? [String: Any])?["upstream"] as? [String: Any])?["address"] as? String == "cloud.example:8883")
        #expect(((json["devices"] as? [String: Any])?["list"] as? [[String: Any]])?.first?["deviceId"] as? String == "d1")
    }

    @Test func aClientGetsEveryDeviceInItsFirstStatusAndThenOnlyWhatChanged() async throws {
        let world = AdminServerTests.World()
        world.devices.withLock { devices in
            devices = (1...300).map { .init(deviceId: "dev-\($0)", lastSeenMs: 1_000, lastChannel: "event", messages: 1, rejected: 0, registered: nil, userId: nil, type: nil) }
        }
        let server = AdminServerTests.makeServer(world: world)
        let running = Task { try await server.run() }
        defer { running.cancel() }
        for _ in 0..<500 where server.boundPort == nil { try await Task.sleep(for: .milliseconds(10)) }
        let port = try #require(server.boundPort)
        let statuses = Locked<[String]>([])
        // The first status lists 300 devices: more than the client's default frame size.
        try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/live", configuration: .init(maxFrameSize: 1 << 20), logger: Self.logger) { inbound, outbound, _ in
            for try await message in inbound.messages(maxSize: 1 << 20) {
                guard case .text(let text) = message, text.contains(#""type":"status""#) else { continue }
                let count = statuses.withLock { $0.append(text); return $0.count }
                if count == 1 {
                    // One device speaks again, one is forgotten.
                    world.devices.withLock { devices in
                        devices[0].messages = 5
                        devices[0].lastSeenMs = 2_000
                        devices.removeLast()
                    }
                }
                if count == 3 { try await outbound.close(.normalClosure, reason: nil) }
            }
        }
        let devices = try statuses.withLock { $0 }.map { text in
            let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
            return json?["devices"] as? [String: Any] ?? [:]
        }
        try #require(devices.count == 3)
        #expect((devices[0]["list"] as? [Any])?.count == 300 && devices[0]["changed"] == nil)
        let second = devices[1], third = devices[2]
        #expect(second["list"] == nil)
        #expect((second["changed"] as? [[String: Any]])?.map { $0["deviceId"] as? String } == ["dev-1"])
        #expect((second["changed"] as? [[String: Any]])?.first?["events"] as? Int == 5)
        #expect(second["removed"] as? [String] == ["dev-300"] && second["total"] as? Int == 299)
        #expect((third["changed"] as? [Any])?.isEmpty == true && (third["removed"] as? [Any])?.isEmpty == true)
    }

    @Test func audioFramesGoOnlyToClientsThatAskWhenLiveAudioIsOn() async throws {
        try await Self.withFeed({ $0.liveAudio = true }) { feed, port in
            let session = UUID()
            let frame = Locked<[UInt8]?>(nil)
            #expect(!feed.wantsAudio)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/live?device=*", logger: Self.logger) { inbound, outbound, _ in
                        try await outbound.write(.text(#"{"subscribe": "d1", "audio": true}"#))
                        for try await message in inbound.messages(maxSize: 1 << 16) {
                            if case .binary(let buffer) = message {
                                frame.withLock { $0 = Array(buffer: buffer) }
                                try await outbound.close(.normalClosure, reason: nil)
                            }
                        }
                    }
                }
                try await Self.waitForClients(feed, 1)
                for _ in 0..<500 where !feed.wantsAudio { try await Task.sleep(for: .milliseconds(10)) }
                #expect(feed.wantsAudio)
                feed.publish(.audio(device: DeviceID("d1")!, session: session, sequence: 7, payload: [0xAA, 0xBB]))
                try await group.waitForAll()
            }
            let bytes = try #require(frame.withLock { $0 })
            #expect(bytes.count == 30)
            let uuid = withUnsafeBytes(of: session.uuid) { Array($0) }
            #expect(Array(bytes[8..<24]) == uuid)
            #expect(Array(bytes[24..<28]) == [0, 0, 0, 7])
            #expect(Array(bytes[28...]) == [0xAA, 0xBB])
            // The listener left: nobody wants audio, so producers stop copying frames.
            try await Self.waitForClients(feed, 0)
            #expect(!feed.wantsAudio)
        }
    }

    @Test func aClientThatDoesNotReadIsClosedWithPolicyViolationInsteadOfBuffering() async throws {
        try await Self.withFeed({ $0.liveQueueDepth = 8 }) { feed, port in
            let release = AsyncStream.makeStream(of: Void.self)
            let started = Locked(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let close = try await WebSocketClient.connect(
                        url: "ws://127.0.0.1:\(port)/live", configuration: .init(maxFrameSize: 1 << 20), logger: Self.logger
                    ) { inbound, _, _ in
                        started.withLock { $0 = true }
                        // Read nothing until the server has given up on us.
                        for await _ in release.stream { break }
                        for try await _ in inbound.messages(maxSize: 1 << 20) {}
                    }
                    #expect(close?.closeCode == .policyViolation)
                    #expect(close?.reason == "client too slow")
                }
                try await Self.waitForClients(feed, 1)
                try await Self.waitForHandler(started)
                // Large messages, so the socket buffers fill and the queue has to take the rest.
                let big = String(repeating: "x", count: 60_000)
                for _ in 0..<400 where feed.clientCount > 0 {
                    feed.publish(Self.response("d1", .dialogResponse, #"{"transcript":"\#(big)"}"#))
                    try await Task.sleep(for: .milliseconds(1))
                }
                release.continuation.finish()
                try await group.waitForAll()
            }
            try await Self.waitForClients(feed, 0)
        }
    }

    /// The client turned away is a raw TCP connection: the refusal (101, close frame, end of the
    /// stream) comes within a millisecond, and `WebSocketClient` sometimes misses a close that
    /// arrives while it is still switching its pipeline (it then waited forever, CI stop 26).
    @Test func clientsBeyondLiveMaxClientsAreTurnedAwayWith1013() async throws {
        try await Self.withFeed({ $0.liveMaxClients = 1 }) { feed, port in
            let release = AsyncStream.makeStream(of: Void.self)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/live", logger: Self.logger) { _, outbound, _ in
                        for await _ in release.stream { break }
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                }
                try await Self.waitForClients(feed, 1)
                let upgrade = (["GET /live HTTP/1.1", "Host: 127.0.0.1:\(port)"] + AdminBoundaryTests.upgradeHeaders).joined(separator: "\r\n") + "\r\n\r\n"
                let answer = try await RawHTTPConnection.answerBeforeClose(port: port, sending: upgrade)
                let close = try #require(Self.closeFrame(after101: answer), "\(String(decoding: answer, as: UTF8.self))")
                #expect(close.code == 1013)
                #expect(close.reason == "too many live clients (live.maxClients)")
                #expect(feed.clientCount == 1)
                release.continuation.finish()
                try await group.waitForAll()
            }
        }
    }

    /// The close frame that follows a `101 Switching Protocols` head in `bytes` (a server's frames
    /// are not masked): its code and reason, or nil when `bytes` are not that.
    static func closeFrame(after101 bytes: [UInt8]) -> (code: Int, reason: String)? {
        guard let end = RawHTTPConnection.find(Array("\r\n\r\n".utf8), in: bytes),
            String(decoding: bytes[..<end], as: UTF8.self).hasPrefix("HTTP/1.1 101")
        else { return nil }
        let frame = Array(bytes[(end + 4)...])
        // FIN + opcode 8 (close), then a payload length under 126: the 2-byte code and the reason.
        guard frame.count >= 4, frame[0] == 0x88, frame[1] < 126, frame.count >= 2 + Int(frame[1]) else { return nil }
        let payload = frame[2..<2 + Int(frame[1])]
        let code = Int(payload[payload.startIndex]) << 8 | Int(payload[payload.startIndex + 1])
        return (code, String(decoding: payload.dropFirst(2), as: UTF8.self))
    }
}

/// A value shared with a client's handler.
final class Locked<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ value: Value) {
        self.value = Mutex(value)
    }

    func withLock<R: Sendable>(_ body: (inout Value) throws -> R) rethrows -> R {
        try value.withLock { try body(&$0) }
    }
}
