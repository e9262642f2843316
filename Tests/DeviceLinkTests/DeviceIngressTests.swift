import Foundation
import GatewayCore
import Logging
import MQTT
import BrokerTestSupport
import Outbox
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import DeviceLink

/// Acks as the ingress sends them, each with the outbox's depth at that moment (an event must be
/// committed before its `stored` ack).
final class RecordingAcks: DeviceReplies {
    struct Sent: Sendable {
        var ack: DeviceAck
        var depthWhenSent: Int64
    }

    let outbox: Outbox
    private let sent = Mutex<[Sent]>([])

    init(outbox: Outbox) {
        self.outbox = outbox
    }

    var all: [Sent] { sent.withLock { $0 } }
    var acks: [DeviceAck] { all.map(\.ack) }

    func send(_ ack: DeviceAck) throws(DeviceReplyError) {
        let depth = outbox.depth.count
        sent.withLock { $0.append(Sent(ack: ack, depthWhenSent: depth)) }
    }

    func send(_ response: DeviceResponse) throws(DeviceReplyError) {}
}

/// A ``DeviceIngress`` fed by a stream instead of the events connection: a real outbox on a
/// temporary SQLite file, no broker.
final class IngressBed: Sendable {
    let outbox: Outbox
    let acks: RecordingAcks
    let ingress: DeviceIngress
    let link: AsyncStream<LinkChange>.Continuation
    private let input: AsyncStream<[DeviceInbound]>.Continuation
    private let directory: URL
    private let running: Task<Void, Never>
    private let shutdown = ShutdownSwitch()

    init(
        hubID: String = "hub-1", registered: Set<String>? = nil, activity: DeviceActivity? = nil,
        configure: (inout DeviceIngressConfiguration) -> Void = { _ in }
    ) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ingress-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var store = OutboxConfiguration(path: directory.appendingPathComponent("outbox.db").path)
        store.commitIntervalMs = 0
        store.requireSyncedClock = false
        outbox = try Outbox.open(configuration: store, logger: Logger(label: "ingress-test"))
        acks = RecordingAcks(outbox: outbox)
        let (stream, input) = AsyncStream.makeStream(of: [DeviceInbound].self)
        self.input = input
        let (changes, link) = AsyncStream.makeStream(of: LinkChange.self)
        self.link = link
        var configuration = DeviceIngressConfiguration(hubID: hubID)
        if registered != nil { configuration.requireRegistration = true }
        configure(&configuration)
        ingress = DeviceIngress(
            inbox: DeviceInbox(stream, onPause: { input.finish() }), link: changes, replies: acks, outbox: outbox,
            configuration: configuration, activity: activity, isRegistered: { registered?.contains($0.rawValue) ?? false },
            logger: Logger(label: "ingress-test"))
        running = Task { [ingress, shutdown] in
            await testGracefulShutdown { trigger in
                shutdown.arm(trigger)
                try? await ingress.run()
            }
        }
    }

    /// One batch, as the connection hands it over.
    func send(_ batch: [DeviceInbound]) {
        input.yield(batch)
    }

    func stop() async {
        // As the service group stops it: a graceful shutdown.
        await shutdown.pull()
        await running.value
        await outbox.close()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Waits until `count` acks were sent.
    @discardableResult
    func waitForAcks(_ count: Int) async throws -> [DeviceAck] {
        try await Poll.until("\(count) acks", details: { "have \(self.acks.acks)" }) { self.acks.all.count >= count }
        return acks.acks
    }
}


func event(_ device: String, _ eventID: String, channel: DeviceTopic.Channel = .event) -> DeviceInbound {
    .message(DeviceMessage(
        device: DeviceID(device)!, channel: channel,
        payload: Array(#"{"eventId":"\#(eventID)","type":"door.open","timestamp":1700000000000,"data":{"open":true}}"#.utf8)))
}

func raw(_ device: String, _ payload: String) -> DeviceInbound {
    .message(DeviceMessage(device: DeviceID(device)!, channel: .event, payload: Array(payload.utf8)))
}

/// The ingress's rules against the device edge's protocols (an inbox, recorded acks): no broker.
/// With the broker and the daemon: IntegrationTests (EventDeliveryTests, MalformedEventTests, …).
@Suite struct DeviceIngressTests {
    @Test func eventsAreAcknowledgedStoredOnlyAfterTheirCommitInArrivalOrder() async throws {
        let bed = try IngressBed()
        bed.send([event("d1", "e1"), event("d2", "e1"), event("d1", "e2", channel: .telemetry)])
        bed.send([event("d1", "e3")])
        let acks = try await bed.waitForAcks(4)
        #expect(acks.map { "\($0.device)/\($0.eventID ?? "-")/\($0.status.rawValue)" } == ["d1/e1/stored", "d2/e1/stored", "d1/e2/stored", "d1/e3/stored"])
        for (index, sent) in bed.acks.all.enumerated() {
            #expect(sent.depthWhenSent >= Int64(index + 1), "ack \(index) went out before its commit")
        }
        let stored = try await bed.outbox.pending(after: 0, limit: 10)
        #expect(stored.map(\.eventID) == ["e1", "e1", "e2", "e3"])
        #expect(stored.map(\.device) == ["d1", "d2", "d1", "d1"])
        await bed.stop()
    }

    @Test func aRepeatedEventIsAcknowledgedDuplicateAndNotStoredAgain() async throws {
        let bed = try IngressBed()
        bed.send([event("d1", "e1")])
        try await bed.waitForAcks(1)
        bed.send([event("d1", "e1"), event("d1", "e1")])
        let acks = try await bed.waitForAcks(3)
        #expect(acks.map(\.status) == [.stored, .duplicate, .duplicate])
        #expect(bed.outbox.depth.count == 1)
        await bed.stop()
    }

    @Test func badEventsAreRejectedAtOnceWithTheirReasonAndNothingIsStored() async throws {
        let bed = try IngressBed()
        bed.send([
            raw("d1", "not json"),
            raw("d1", #"{"eventId":"e-7","type":5}"#),
            raw("d1", #"{"eventId":"x","type":"t","data":"\#(String(repeating: "a", count: 70_000))"}"#),
        ])
        let acks = try await bed.waitForAcks(3)
        #expect(acks.map(\.status) == [.rejected, .rejected, .rejected])
        #expect(acks.map(\.reason) == [.invalidJSON, .invalidType, .payloadTooLarge])
        #expect(acks[1].eventID == "e-7")
        #expect(bed.outbox.depth.count == 0)
        #expect(bed.ingress.state.current.eventsRejected == 3)
        await bed.stop()
    }

    @Test func topicsThatAreNotADevicesAreCountedButNeverAcknowledged() async throws {
        let bed = try IngressBed()
        bed.send([.invalid(.notADeviceTopic(escaped: "device/a/b/event")), .invalid(.invalidDeviceID(escaped: "bad id")), event("d1", "e1")])
        let acks = try await bed.waitForAcks(1)
        #expect(acks.map(\.device.rawValue) == ["d1"])
        try await Poll.until("the rejects counted") { bed.ingress.state.current.eventsRejected == 2 }
        await bed.stop()
    }

    @Test func noDeviceMaySendAsTheHub() async throws {
        let bed = try IngressBed(hubID: "hub-1")
        bed.send([event("hub-1", "e1")])
        let acks = try await bed.waitForAcks(1)
        #expect(acks[0].status == .rejected)
        #expect(acks[0].reason == .reservedDevice)
        #expect(acks[0].eventID == "e1")
        #expect(bed.outbox.depth.count == 0)
        await bed.stop()
    }

    @Test func withRequireRegistrationOnlyRegisteredDevicesAreStored() async throws {
        let bed = try IngressBed(registered: ["known"])
        bed.send([event("known", "e1"), event("stranger", "e1")])
        let acks = try await bed.waitForAcks(2)
        let byDevice = Dictionary(uniqueKeysWithValues: acks.map { ($0.device.rawValue, $0) })
        #expect(byDevice["known"]?.status == .stored)
        #expect(byDevice["stranger"]?.status == .rejected)
        #expect(byDevice["stranger"]?.reason == .unregistered)
        await bed.stop()
    }

    @Test func theConnectionsStateIsPublishedAsValues() async throws {
        let bed = try IngressBed()
        #expect(bed.ingress.state.current.deviceBrokerConnected == false)
        bed.link.yield(.connected)
        bed.link.yield(.subscribed)
        try await Poll.until("connected and subscribed") {
            bed.ingress.state.current.deviceBrokerConnected && bed.ingress.state.current.deviceSubscribed
        }
        let up = bed.ingress.state.current
        #expect(up.linkSinceMs != nil && up.linkLastError == nil)
        bed.link.yield(.down(reason: "connection lost"))
        try await Poll.until("down") { !bed.ingress.state.current.deviceBrokerConnected && !bed.ingress.state.current.deviceSubscribed }
        let down = bed.ingress.state.current
        #expect(down.linkLastError == "connection lost")
        #expect((down.linkSinceMs ?? 0) >= (up.linkSinceMs ?? .max))
        await bed.stop()
    }

    @Test func onShutdownEverythingAlreadyReadIsCommittedAndAcknowledged() async throws {
        let bed = try IngressBed()
        let batch = (0..<200).map { event("d\($0 % 5)", "e\($0)") }
        bed.send(batch)
        // Stop at once: the ingress stops reading, but what it took is committed and acked.
        await bed.stop()
        let acked = bed.acks.acks
        #expect(acked.count == 200)
        #expect(acked.allSatisfy { $0.status == .stored })
    }
}

/// How a broker message becomes a device edge value.
@Suite struct DeviceInboundTests {
    func message(_ topic: String) -> MQTTMessage {
        MQTTMessage(topic: Array(topic.utf8), payload: [1, 2, 3], qos: 1)
    }

    @Test func aMessageOfAnExpectedChannelCarriesItsDeviceChannelAndPayload() throws {
        guard case .message(let read) = DeviceInbound.read(message("device/d-1/telemetry"), channels: [.event, .telemetry]) else {
            Issue.record("not read as a device message")
            return
        }
        #expect(read.device.rawValue == "d-1")
        #expect(read.channel == .telemetry)
        #expect(read.payload == [1, 2, 3])
    }

    @Test func anotherChannelOrTopicIsInvalidWithTheTopicEscaped() {
        guard case .invalid(.notADeviceTopic(let escaped)) = DeviceInbound.read(message("device/d-1/audio"), channels: [.event]) else {
            Issue.record("a message of another channel was taken")
            return
        }
        #expect(escaped == "device/d-1/audio")
        guard case .invalid(.invalidDeviceID) = DeviceInbound.read(message("device/bad id/event"), channels: [.event]) else {
            Issue.record("an invalid device id was taken")
            return
        }
    }

    @Test func anInboxOverAStreamEndsWhenPaused() async {
        let (stream, input) = AsyncStream.makeStream(of: [ListenRequest].self)
        let inbox = DeviceInbox(stream, onPause: { input.finish() })
        input.yield([ListenRequest(payload: [1])])
        inbox.pauseReading()
        var batches = 0
        for await _ in inbox { batches += 1 }
        #expect(batches == 1)
    }
}


/// Presence (CONTRACTS.md §5) as the events connection hears it.
@Suite struct DevicePresenceTests {
    func status(_ device: String, _ payload: String) -> DeviceInbound {
        .message(DeviceMessage(device: DeviceID(device)!, channel: .status, payload: Array(payload.utf8)))
    }

    @Test func anAnnouncedDeviceIsOnlineUntilItsOfflineOrWillAndNothingIsAcked() async throws {
        let activity = DeviceActivity()
        let bed = try IngressBed(activity: activity)
        // The event after the announcements is the sentinel: its ack means they were handled.
        bed.send([status("lamp", #"{"online": true}"#), status("plug", #"{"online": false}"#), event("lamp", "e1")])
        let acks = try await bed.waitForAcks(1)
        #expect(acks.map(\.device.rawValue) == ["lamp"])
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(activity.device(DeviceID("lamp")!)?.announcedOnline == true)
        #expect(activity.device(DeviceID("plug")!)?.isOnline(nowMs: now, presenceSeconds: 300) == false, "announced offline, though it just spoke")
        bed.send([status("lamp", #"{"online": false}"#), event("plug", "e1")])
        try await bed.waitForAcks(2)
        #expect(activity.device(DeviceID("lamp")!)?.isOnline(nowMs: now, presenceSeconds: 300) == false)
        #expect(bed.outbox.depth.count == 2, "presence is not an event")
        await bed.stop()
    }

    @Test func aDeviceThatNeverAnnouncesIsOnlineWhileItSpeaks() {
        let activity = DeviceActivity()
        activity.record(DeviceID("sensor")!, channel: "event", atMs: 1_000_000)
        let device = activity.device(DeviceID("sensor")!)
        #expect(device?.announcedOnline == nil)
        #expect(device?.isOnline(nowMs: 1_000_000 + 299_000, presenceSeconds: 300) == true)
        #expect(device?.isOnline(nowMs: 1_000_000 + 301_000, presenceSeconds: 300) == false)
    }

    @Test(arguments: [#"{"online": 1}"#, #"{"online": "yes"}"#, "not json", #"{}"#, String(repeating: " ", count: 300) + #"{"online": true}"#])
    func aMalformedAnnouncementIsCountedAndChangesNothing(_ payload: String) async throws {
        let activity = DeviceActivity()
        let bed = try IngressBed(activity: activity)
        bed.send([status("lamp", payload), event("other", "e1")])
        try await bed.waitForAcks(1)
        #expect(activity.device(DeviceID("lamp")!) == nil)
        #expect(bed.ingress.state.current.eventsRejected == 1)
        await bed.stop()
    }

    @Test func noDeviceAnnouncesForTheHub() async throws {
        let activity = DeviceActivity()
        let bed = try IngressBed(hubID: "hub-1", activity: activity)
        bed.send([status("hub-1", #"{"online": true}"#), event("other", "e1")])
        try await bed.waitForAcks(1)
        #expect(activity.device(DeviceID("hub-1")!) == nil)
        await bed.stop()
    }
}
