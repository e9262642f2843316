import Logging
import Outbox
import Testing
import Upstream

@testable import MQTT

/// The forwarder's rules (Sources/README.md, "Forwarder"; CONTRACTS.md §2) against a scripted link
/// and a real outbox: no broker.
@Suite(.timeLimit(.minutes(1)))
struct UpstreamForwarderTests {
    @Test func eventsArePublishedInSequenceOrderWithTheirEventIdsOnTheirDevicesTopics() async throws {
        try await ForwarderBed.run { bed in
            let events = [("d1", "a-1"), ("d2", "b-1"), ("d1", "a-2"), ("d1", "a-3"), ("d2", "b-2"), ("d3", "c-1")]
            try await bed.append(events)
            bed.first.connect()
            try await eventually("6 publishes") { bed.first.published.count >= 6 }

            let published = bed.first.published
            #expect(published.map(\.eventID) == events.map(\.1))
            #expect(published.map(\.topic) == events.map { "hubs/hub-1/events/\($0.0)" })
            #expect(published.map(\.payload) == events.map { envelope(device: $0.0, eventID: $0.1) })
            #expect(published.allSatisfy { $0.qos == 1 && !$0.retain && $0.ticket.generation == 1 })
        }
    }

    @Test func aRecordThatNamesItsTopicIsPublishedThereInItsPlace() async throws {
        try await ForwarderBed.run { bed in
            try await bed.append([("d1", "a-1")])
            try await bed.append([("d1", "\u{1}command c1 queued")], topic: "hubs/hub-1/commands/d1/status")
            try await bed.append([("d1", "a-2")])
            bed.first.connect()
            try await eventually("3 publishes") { bed.first.published.count >= 3 }
            #expect(bed.first.published.map(\.topic) == ["hubs/hub-1/events/d1", "hubs/hub-1/commands/d1/status", "hubs/hub-1/events/d1"])
        }
    }

    @Test func messagesOnTheLinksSubscriptionsAreHandedOnAlsoAfterAReload() async throws {
        try await ForwarderBed.run(shutdownGrace: .milliseconds(50)) { bed in
            bed.first.connect()
            bed.first.deliver(topic: "hubs/hub-1/commands/d1", payload: #"{"commandId":"c1"}"#)
            try await eventually("the first message handed on") { bed.inbound.all.count == 1 }
            bed.forwarder.update(client: ForwarderBed.linkConfiguration(port: 18_831), configuration: UpstreamConfiguration(hubID: ForwarderBed.hubID))
            let second = try await bed.madeLink(1)
            second.connect()
            second.deliver(topic: "hubs/hub-1/commands/d2", payload: #"{"commandId":"c2"}"#)
            try await eventually("the second message handed on") { bed.inbound.all.count == 2 }
            #expect(bed.inbound.all == [#"hubs/hub-1/commands/d1 {"commandId":"c1"}"#, #"hubs/hub-1/commands/d2 {"commandId":"c2"}"#])
        }
    }

    @Test func anIdleForwarderPublishesWhatTheNextCommitStores() async throws {
        try await ForwarderBed.run { bed in
            bed.first.connect()
            try await eventually("link up") { bed.forwarder.state.current.upstreamConnected }
            try await bed.append([("d1", "late-1"), ("d1", "late-2")])
            try await eventually("both published") { bed.first.published.count >= 2 }
            #expect(bed.first.published.map(\.eventID) == ["late-1", "late-2"])
        }
    }

    @Test func atMostInflightPublishesAwaitPubackAtOnce() async throws {
        try await ForwarderBed.run(inflight: 4) { bed in
            let ids = (1...10).map { "e\($0)" }
            try await bed.append(ids.map { ("d1", $0) })
            bed.first.connect()
            try await eventually("a full window") { bed.first.published.count >= 4 }
            #expect(bed.first.published.map(\.eventID) == Array(ids.prefix(4)))

            // The broker acknowledges whatever is awaiting PUBACK until everything is through.
            try await eventually("all forwarded") {
                bed.first.acknowledgeAll()
                return bed.outbox.depth.count == 0
            }
            #expect(bed.first.published.map(\.eventID) == ids)
            #expect(bed.first.mostUnacknowledged == 4)
        }
    }

    @Test func anEventLeavesTheOutboxOnlyAfterItsPuback() async throws {
        try await ForwarderBed.run { bed in
            try await bed.append([("d1", "e1"), ("d1", "e2"), ("d2", "e3")])
            bed.first.connect()
            try await eventually("3 publishes") { bed.first.published.count >= 3 }
            #expect(try await bed.storedEventIDs() == ["e1", "e2", "e3"])

            bed.first.acknowledge([bed.first.published[1]])
            try await eventually("e2 removed") { bed.outbox.depth.count == 2 }
            #expect(try await bed.storedEventIDs() == ["e1", "e3"])
            #expect(bed.forwarder.state.current.eventsForwarded == 1)

            bed.first.acknowledgeAll()
            try await eventually("all removed") { bed.outbox.depth.count == 0 }
            #expect(bed.forwarder.state.current.eventsForwarded == 3)
        }
    }

    @Test func aLostLinkResendsFromTheOldestUnacknowledgedEventWithTheSameEventIds() async throws {
        try await ForwarderBed.run(inflight: 4) { bed in
            let ids = (1...8).map { "e\($0)" }
            try await bed.append(ids.enumerated().map { ("d\($0.offset % 2)", $0.element) })
            bed.first.connect()
            try await eventually("a full window") { bed.first.published.count >= 4 }
            // e1 and e2 acknowledged (and removed); e3…e6 awaiting PUBACK; e7, e8 not sent yet.
            bed.first.acknowledge(Array(bed.first.published.prefix(2)))
            try await eventually("e1, e2 removed and the window refilled") {
                bed.outbox.depth.count == 6 && bed.first.published.count >= 6
            }
            #expect(bed.first.published.map(\.eventID) == Array(ids.prefix(6)))
            let firstSend = Dictionary(uniqueKeysWithValues: bed.first.published.map { ($0.eventID ?? "", $0.payload) })

            bed.first.drop(reason: "connection reset by peer")
            bed.first.connect()
            try await eventually("a full window on the new connection") {
                bed.first.published(onGeneration: 2).count >= 4
            }
            let resent = bed.first.published(onGeneration: 2)
            #expect(resent.map(\.eventID) == ["e3", "e4", "e5", "e6"])
            #expect(resent.allSatisfy { firstSend[$0.eventID ?? ""] == $0.payload })

            try await eventually("all forwarded") {
                bed.first.acknowledgeAll()
                return bed.outbox.depth.count == 0
            }
            #expect(bed.first.published(onGeneration: 2).map(\.eventID) == Array(ids.dropFirst(2)))
            #expect(bed.forwarder.state.current.eventsForwarded == 8)
        }
    }

    @Test func aFailoverToAnotherAddressIsShownAndResendsFromTheOldestUnacknowledgedEvent() async throws {
        try await ForwarderBed.run { bed in
            #expect(bed.forwarder.state.current.upstreamBroker == "127.0.0.1:18830")
            try await bed.append([("d1", "a-1"), ("d2", "b-1"), ("d1", "a-2")])
            bed.first.connect()
            try await eventually("3 publishes") { bed.first.published.count >= 3 }
            bed.first.acknowledge([bed.first.published[0]])
            try await eventually("a-1 forwarded") { bed.forwarder.state.current.eventsForwarded == 1 }

            // The node dies; the link moves to the next address and connects there.
            bed.first.drop(reason: "connection reset by peer")
            let from = MQTTBrokerAddress(host: "127.0.0.1", port: 18_830)
            let to = MQTTBrokerAddress(host: "::1", port: 18_831)
            bed.first.moveAddress(from: from, to: to, reason: "connection reset by peer")
            try await eventually("the address in use and the failover count changed") {
                let state = bed.forwarder.state.current
                return state.upstreamBroker == "[::1]:18831" && state.upstreamFailovers == 1 && !state.upstreamConnected
            }
            let failover = bed.logs.entries(startingWith: "upstream failover from 127.0.0.1:18830 to [::1]:18831")
            #expect(failover.map(\.level) == [.info], "\(bed.logs.all.map(\.message))")
            bed.first.connect()
            try await eventually("the unacknowledged ones again") { bed.first.published(onGeneration: 2).count >= 2 }
            #expect(bed.first.published(onGeneration: 2).map(\.eventID) == ["b-1", "a-2"])
        }
    }

    @Test func anEventNoBrokerWouldTakeIsDroppedAndTheOthersGoOn() async throws {
        try await ForwarderBed.run(maxPayloadBytes: 1024) { bed in
            try await bed.append([("d1", "small-1")])
            try await bed.append([("d1", "huge")], padding: 4096)
            try await bed.append([("d1", "small-2")])
            bed.first.connect()
            try await eventually("the small ones published") { bed.first.published.count >= 2 }
            #expect(bed.first.published.map(\.eventID) == ["small-1", "small-2"])
            try await eventually("all gone from the outbox") {
                bed.first.acknowledgeAll()
                return bed.outbox.depth.count == 0
            }
            let dropped = bed.logs.entries(startingWith: "event cannot be published upstream")
            #expect(dropped.map(\.level) == [.error])
            #expect(dropped.first?.metadata["event.id"] == "huge")
            // Dropped, not forwarded.
            #expect(bed.forwarder.state.current.eventsForwarded == 2)
        }
    }

    @Test func thePublishedStateFollowsTheLink() async throws {
        try await ForwarderBed.run { bed in
            let state = bed.forwarder.state
            var initial = UpstreamForwarder.State()
            initial.upstreamBroker = "127.0.0.1:18830"
            initial.upstreamAddresses = ["127.0.0.1:18830"]
            #expect(state.current == initial)

            bed.first.refuse(reason: "connection refused")
            try await eventually("the refusal") { state.current.upstreamLastError == "connection refused" }
            #expect(!state.current.upstreamConnected)
            let refusedSince = try #require(state.current.upstreamSinceMs)

            bed.first.connect()
            try await eventually("link up") { state.current.upstreamConnected }
            #expect(state.current.upstreamLastError == nil)
            let upSince = try #require(state.current.upstreamSinceMs)
            #expect(upSince >= refusedSince)

            try await bed.append([("d1", "e1"), ("d2", "e2")])
            try await eventually("2 in flight") { state.current.upstreamInflight == 2 }
            bed.first.acknowledgeAll()
            try await eventually("2 forwarded") { state.current.eventsForwarded == 2 }
            #expect(state.current.upstreamInflight == 0)

            try await bed.append([("d1", "e3")])
            try await eventually("1 in flight") { state.current.upstreamInflight == 1 }
            bed.first.drop(reason: "keepalive timeout")
            try await eventually("link down") { !state.current.upstreamConnected }
            #expect(state.current.upstreamLastError == "keepalive timeout")
            #expect(state.current.upstreamInflight == 0)
            #expect(state.current.eventsForwarded == 2)
            #expect((state.current.upstreamSinceMs ?? 0) >= upSince)
        }
    }
}

/// Configuration reload: ``UpstreamForwarder/update(client:configuration:)``.
@Suite(.timeLimit(.minutes(1)))
struct UpstreamReloadTests {
    static let otherBroker = ForwarderBed.linkConfiguration(port: 28_830)

    static func settings(inflight: Int = 100, shutdownGrace: Duration) -> UpstreamConfiguration {
        var settings = UpstreamConfiguration(hubID: ForwarderBed.hubID)
        settings.inflight = inflight
        settings.shutdownGrace = shutdownGrace
        return settings
    }

    @Test func aReloadSwitchesOnceThePublishesUnderWayAreAcknowledgedAndLosesNothing() async throws {
        try await ForwarderBed.run(shutdownGrace: .seconds(3600)) { bed in
            try await bed.append([("d1", "e1"), ("d2", "e2"), ("d1", "e3"), ("d2", "e4")])
            bed.first.connect()
            try await eventually("4 publishes") { bed.first.published.count >= 4 }
            bed.first.acknowledge(Array(bed.first.published.prefix(2)))
            try await eventually("e1, e2 removed") { bed.outbox.depth.count == 2 }

            bed.forwarder.update(client: Self.otherBroker, configuration: Self.settings(shutdownGrace: .seconds(3600)))
            try await eventually("the switch is pending") {
                !bed.logs.entries(startingWith: "upstream settings changed").isEmpty
            }
            #expect(bed.links.count == 1)

            bed.first.acknowledgeAll()
            let second = try await bed.madeLink(1)
            #expect(second.configuration == Self.otherBroker)
            #expect(bed.first.isStopped)
            #expect(try await bed.storedEventIDs().isEmpty)
            try await eventually("link down while switching") { !bed.forwarder.state.current.upstreamConnected }
            // The status page shows the broker the forwarder now talks to.
            #expect(bed.forwarder.state.current.upstreamBroker == "127.0.0.1:28830")

            second.connect()
            try await bed.append([("d1", "e5")])
            try await eventually("e5 forwarded on the new link") {
                second.acknowledgeAll()
                return !second.published.isEmpty && bed.outbox.depth.count == 0
            }
            #expect(bed.first.published.map(\.eventID) == ["e1", "e2", "e3", "e4"])
            #expect(second.published.map(\.eventID) == ["e5"])
            #expect(bed.forwarder.state.current.eventsForwarded == 5)
        }
    }

    @Test func publishesNotAcknowledgedWithinTheGraceAreSentAgainOnTheNewLink() async throws {
        try await ForwarderBed.run(shutdownGrace: .milliseconds(100)) { bed in
            try await bed.append([("d1", "e1"), ("d1", "e2"), ("d2", "e3")])
            bed.first.connect()
            try await eventually("3 publishes") { bed.first.published.count >= 3 }
            bed.first.acknowledge([bed.first.published[0]])
            try await eventually("e1 removed") { bed.outbox.depth.count == 2 }

            bed.forwarder.update(client: Self.otherBroker, configuration: Self.settings(shutdownGrace: .milliseconds(100)))
            let second = try await bed.madeLink(1)
            #expect(bed.first.isStopped)
            #expect(bed.logs.entries(startingWith: "upstream switch: publishes not acknowledged").map(\.level) == [.warning])

            second.connect()
            try await eventually("e2, e3 again") { second.published.count >= 2 }
            #expect(second.published.map(\.eventID) == ["e2", "e3"])
            #expect(second.published.map(\.payload) == Array(bed.first.published.dropFirst().map(\.payload)))
            second.acknowledgeAll()
            try await eventually("all forwarded") { bed.outbox.depth.count == 0 }
        }
    }

    @Test func aReloadWhileTheLinkIsDownSwitchesAtOnce() async throws {
        try await ForwarderBed.run(shutdownGrace: .seconds(3600)) { bed in
            try await bed.append([("d1", "e1"), ("d2", "e2")])
            bed.first.refuse(reason: "connection refused")
            bed.forwarder.update(client: Self.otherBroker, configuration: Self.settings(inflight: 1, shutdownGrace: .seconds(3600)))
            let second = try await bed.madeLink(1)
            second.connect()
            // The new settings hold: one publish at a time.
            try await eventually("all forwarded") {
                second.acknowledgeAll()
                return bed.outbox.depth.count == 0
            }
            #expect(second.published.map(\.eventID) == ["e1", "e2"])
            #expect(second.mostUnacknowledged == 1)
            #expect(bed.first.published.isEmpty)
        }
    }
}

/// Graceful shutdown: in-flight publishes get `upstream.shutdownGraceSeconds` to be acknowledged.
@Suite(.timeLimit(.minutes(1)))
struct UpstreamShutdownTests {
    @Test func publishesAcknowledgedWithinTheGraceAreRemovedAndNothingNewIsSent() async throws {
        try await ForwarderBed.run(shutdownGrace: .seconds(3600)) { bed in
            try await bed.append([("d1", "e1"), ("d2", "e2"), ("d1", "e3")])
            bed.first.connect()
            try await eventually("3 publishes") { bed.first.published.count >= 3 }

            bed.triggerShutdown()
            try await eventually("draining") { !bed.logs.entries(startingWith: "upstream forwarder draining").isEmpty }
            try await bed.append([("d2", "e4")])
            bed.first.acknowledgeAll()
            try await eventually("stopped once the PUBACKs are in") { bed.hasStopped }

            #expect(bed.first.isStopped)
            #expect(bed.first.published.map(\.eventID) == ["e1", "e2", "e3"])
            #expect(try await bed.storedEventIDs() == ["e4"])
            #expect(bed.forwarder.state.current.eventsForwarded == 3)
            #expect(bed.logs.entries(startingWith: "shutdown grace expired").isEmpty)
        }
    }

    @Test func publishesNotAcknowledgedWithinTheGraceStayInTheOutbox() async throws {
        try await ForwarderBed.run(shutdownGrace: .milliseconds(100)) { bed in
            try await bed.append([("d1", "e1"), ("d2", "e2"), ("d1", "e3")])
            bed.first.connect()
            try await eventually("3 publishes") { bed.first.published.count >= 3 }
            bed.first.acknowledge([bed.first.published[0]])
            try await eventually("e1 removed") { bed.outbox.depth.count == 2 }

            bed.triggerShutdown()
            try await eventually("stopped after the grace") { bed.hasStopped }
            #expect(bed.first.isStopped)
            #expect(bed.logs.entries(startingWith: "shutdown grace expired").map(\.level) == [.warning])
            #expect(try await bed.storedEventIDs() == ["e2", "e3"])
        }
    }

    @Test func aLinkLostWhileDrainingEndsTheWait() async throws {
        try await ForwarderBed.run(shutdownGrace: .seconds(3600)) { bed in
            try await bed.append([("d1", "e1"), ("d2", "e2")])
            bed.first.connect()
            try await eventually("2 publishes") { bed.first.published.count >= 2 }

            bed.triggerShutdown()
            try await eventually("draining") { !bed.logs.entries(startingWith: "upstream forwarder draining").isEmpty }
            bed.first.drop(reason: "connection reset by peer")
            try await eventually("stopped without waiting out the grace") { bed.hasStopped }
            #expect(try await bed.storedEventIDs() == ["e1", "e2"])
        }
    }
}
