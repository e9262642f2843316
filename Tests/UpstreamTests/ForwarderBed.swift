import Foundation
import GatewayCore
import Logging
import Outbox
import ServiceLifecycleTestKit
import Synchronization
import Testing
import Upstream

@testable import MQTT

/// One forwarder running on a real outbox (SQLite in a temporary directory) over scripted links:
/// ``first`` and the ones it makes on reloads (``links``). Each test gets its own.
final class ForwarderBed: Sendable {
    static let hubID = "hub-1"
    /// The broker settings of the first link.
    static let broker = linkConfiguration(port: 18_830)

    let outbox: Outbox
    let forwarder: UpstreamForwarder
    let first: ScriptedLink
    let logs: LogRecorder
    /// What the forwarder handed on from the links' subscriptions: `topic payload`.
    let inbound = Inbound()

    final class Inbound: Sendable {
        private let messages = Mutex<[String]>([])
        func append(_ more: [String]) { messages.withLock { $0.append(contentsOf: more) } }
        var all: [String] { messages.withLock { $0 } }
    }
    private let made: MadeLinks
    private let stopped = Mutex(false)
    private let shutdown: GracefulShutdownTestTrigger

    final class MadeLinks: Sendable {
        let links = Mutex<[ScriptedLink]>([])
    }

    private init(
        outbox: Outbox, configuration: UpstreamConfiguration, maxPayloadBytes: Int, shutdown: GracefulShutdownTestTrigger
    ) {
        let logs = LogRecorder()
        let made = MadeLinks()
        let first = ScriptedLink(configuration: Self.broker, maxPayloadBytes: maxPayloadBytes)
        self.outbox = outbox
        self.first = first
        self.logs = logs
        self.made = made
        self.shutdown = shutdown
        let inbound = self.inbound
        forwarder = UpstreamForwarder(
            link: first, outbox: outbox, configuration: configuration,
            logger: Logger(label: "upstream-test") { _ in RecordingLogHandler(recorder: logs) },
            makeLink: { settings in
                let link = ScriptedLink(configuration: settings)
                made.links.withLock { $0.append(link) }
                return link
            },
            inbound: { batch in
                inbound.append(batch.map { "\($0.topicString) \(String(decoding: $0.payload, as: UTF8.self))" })
            })
    }

    /// Runs a forwarder with these settings (the defaults of ``UpstreamConfiguration`` unless
    /// changed) while `body` runs, then shuts it down (a link still up is dropped, so the grace
    /// does not hold up the test) and removes the store.
    static func run(
        inflight: Int = 100, shutdownGrace: Duration = .seconds(5), maxPayloadBytes: Int = 256 * 1024,
        _ body: (ForwarderBed) async throws -> Void
    ) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("upstream-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var store = OutboxConfiguration(path: directory.appendingPathComponent("outbox.db").path)
        store.commitIntervalMs = 0
        // Build machines often run without NTP; nothing here ages events.
        store.requireSyncedClock = false
        let outbox = try Outbox.open(configuration: store, logger: Logger(label: "upstream-test.outbox"))
        var configuration = UpstreamConfiguration(hubID: hubID)
        configuration.inflight = inflight
        configuration.shutdownGrace = shutdownGrace

        try await testGracefulShutdown { trigger in
            let bed = ForwarderBed(outbox: outbox, configuration: configuration, maxPayloadBytes: maxPayloadBytes, shutdown: trigger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await bed.forwarder.run()
                    bed.stopped.withLock { $0 = true }
                }
                var failure: (any Error)?
                do {
                    // Connections come only after start, as with MQTTClient.
                    try await eventually("the forwarder started its link") { bed.first.isStarted }
                    try await body(bed)
                } catch { failure = error }
                bed.triggerShutdown()
                bed.current.drop(reason: "test over")
                try await group.waitForAll()
                if let failure { throw failure }
            }
        }
        await outbox.close()
    }

    static func linkConfiguration(port: Int) -> MQTTClientConfiguration {
        var configuration = MQTTClientConfiguration(host: "127.0.0.1", port: port, clientID: hubID, cleanSession: false)
        configuration.reportsPublishAcks = true
        return configuration
    }

    /// The first link, then the ones made on reloads, in order.
    var links: [ScriptedLink] { [first] + made.links.withLock { $0 } }
    /// The link the forwarder uses now.
    var current: ScriptedLink { links.last! }
    /// The link the forwarder made on its `number`th reload, once the forwarder has started it.
    func madeLink(_ number: Int) async throws -> ScriptedLink {
        try await eventually("reload link \(number) made and started") {
            links.count > number && links[number].isStarted
        }
        return links[number]
    }

    /// `run()` has returned.
    var hasStopped: Bool { stopped.withLock { $0 } }

    /// Graceful shutdown, as SIGTERM through the service group.
    func triggerShutdown() { shutdown.triggerGracefulShutdown() }

    /// Stores events, each `(device, eventId)`, in this order and returns their sequence numbers.
    @discardableResult
    func append(_ events: [(String, String)], padding: Int = 0, topic: String? = nil) async throws -> [Int64] {
        let records = events.map { device, eventID in
            OutboxRecord(
                device: device, eventID: eventID, key: device, receivedAt: 1_700_000_000_000,
                payload: envelope(device: device, eventID: eventID, padding: padding), topic: topic)
        }
        return try await outbox.append(records).map { outcome in
            guard case .stored(let seq) = outcome else { throw TestFailure("not stored: \(outcome)") }
            return seq
        }
    }

    /// The `eventId`s stored now, oldest first (after every queued write is committed).
    func storedEventIDs() async throws -> [String] {
        await outbox.waitForQueuedWrites()
        return try await outbox.pending(after: 0, limit: 1000).map(\.eventID)
    }
}

/// A device's event as ingress stores it: the upstream envelope, JSON (CONTRACTS.md §2).
func envelope(device: String, eventID: String, padding: Int = 0) -> [UInt8] {
    Array(#"{"deviceId":"\#(device)","eventId":"\#(eventID)","type":"reading","data":"\#(String(repeating: "x", count: padding))"}"#.utf8)
}

/// The `eventId` of an ``envelope(device:eventID:padding:)``.
func envelopeEventID(_ payload: [UInt8]) -> String? {
    guard let object = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any] else { return nil }
    return object["eventId"] as? String
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, looking every few milliseconds, for at most `bound`; records an
/// issue and throws when it does not.
func eventually(
    _ what: String, within bound: Duration = .seconds(10), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + bound
    while try await !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("not within \(bound): \(what)", sourceLocation: sourceLocation)
            throw TestFailure("not within \(bound): \(what)")
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// What the forwarder logged.
final class LogRecorder: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let entries = Mutex<[Entry]>([])

    func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    var all: [Entry] { entries.withLock { $0 } }

    /// The entries whose message starts with `prefix`.
    func entries(startingWith prefix: String) -> [Entry] {
        all.filter { $0.message.hasPrefix(prefix) }
    }
}

struct RecordingLogHandler: LogHandler {
    let recorder: LogRecorder
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        recorder.append(.init(level: event.level, message: "\(event.message)", metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
    }
}
