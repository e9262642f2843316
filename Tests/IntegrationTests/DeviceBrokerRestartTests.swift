import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The device (LAN) broker goes away and comes back on the same port with its persistence, or the daemon does
    /// while the broker stays: the daemon's persistent session carries the devices' events across either.
    @Suite struct DeviceBrokerRestartTests {
        /// The device-side MQTT client's log label: its lines say `edge-gateway.device.mqtt: MQTT subscribed`.
        static let deviceLink = "edge-gateway.device.mqtt: "

        @Test func deviceBrokerRestartWhileDevicesPublishGatewayResubscribesAndEveryStoredEventArrivesUpstreamInOrder() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT subscribed")
                let devices = (1...3).map { "brk-\($0)" }
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 60)) })
                let allIds = Set(sent.values.joined().map(\.eventId))

                // Devices publish paced rounds while the broker is stopped and started again on the same port.
                let batches = bed.batches(sent)
                let publishing = Task {
                    try await Self.publishInRounds(batches, perRound: 10, interval: .milliseconds(30))
                }
                defer { publishing.cancel() }
                try await bed.waitForAcks(count: 20)
                let acksAtStop = bed.allAcks.count
                let failedBefore = bed.gateway.currentRunLogCount(of: Self.deviceLink + "cannot connect to the MQTT broker")
                try await bed.deviceBroker.stop()
                // Until the daemon has noticed and retried at least once in vain (the paced publishers find
                // no broker meanwhile: mosquitto_pub reconnects, a round started now fails and is sent again).
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT connection lost")
                // The first failed connect of a streak is logged at error (the retries after it at debug).
                try await bed.gateway.waitForLog(Self.deviceLink + "cannot connect to the MQTT broker", occurrences: failedBefore + 1)
                try await bed.deviceBroker.start()
                let repeatedRounds = try await publishing.value

                // The daemon noticed, came back on its own and subscribed again (same process, same run).
                try await bed.gateway.waitForLog(Self.deviceLink + "MQTT subscribed", occurrences: 2)
                #expect(bed.gateway.currentRunLog.contains(Self.deviceLink + "MQTT connection lost"), "\(bed.diagnostics)")
                #expect(bed.gateway.isRunning)

                // An ack published while the broker was away is lost (README, "ack delivery"); a device resends
                // what it has no ack for and hears `duplicate` when it had been stored. The broker keeps each
                // device's messages in order for the daemon's session, so once every device's sentinel is
                // acked, every ack that will come for what they sent before has come.
                try await bed.settle(through: devices)
                let settled = bed.allAcks
                let unacked = allIds.subtracting(TestBed.acceptedIds(settled))
                let resend = sent.mapValues { $0.filter { unacked.contains($0.eventId) } }.filter { !$0.value.isEmpty }
                try await bed.publishConcurrently(resend)

                let acks = try await bed.waitForAcceptedAcks(eventIds: allIds, timeout: .seconds(60))
                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks).prefix(10))")
                let rejected = acks.filter { $0.status == "rejected" }
                #expect(rejected.isEmpty, "\(rejected.prefix(5))")

                // Every event acked `stored` (and so every event: `duplicate` means stored earlier) arrives upstream
                // at least once, each device's first arrivals in sending order, every copy the same.
                let storedIds = Set(acks.filter(\.isStored).compactMap(\.eventId))
                let upstream = try await bed.waitForUpstream(eventIds: allIds, timeout: .seconds(60))
                #expect(storedIds.isSubset(of: Set(upstream.compactMap(\.eventId))))
                DeliveryCheck.expectOrderedDelivery(upstream, sent: sent)
                print("""
                    device broker restart: \(acksAtStop) acks before the stop, \(repeatedRounds) rounds published again, \
                    \(unacked.count) events resent for want of an ack, \(storedIds.count) acked stored, \
                    \(upstream.count) upstream messages for \(allIds.count) events
                    """)
            }
        }

        @Test func eventsPublishedWhileTheGatewayIsStoppedAreKeptByTheBrokerAndDeliveredAfterItStarts() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                // The daemon's session exists and works.
                let warmUp = DeviceEvent.series(deviceId: "away-0", count: 3)
                try await bed.device("away-0").publish(warmUp)
                try await bed.waitForAcks(count: 3)
                try await bed.waitForUpstream(count: 3)

                let exit = try await bed.gateway.terminate()
                #expect(exit == .exited(0), "\(exit)\n\(bed.diagnostics)")

                // The broker takes (PUBACKs) these for the daemon's persistent session while nobody reads them.
                let devices = ["away-1", "away-2"]
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 15)) })
                let ids = Set(sent.values.joined().map(\.eventId))
                try await bed.publishConcurrently(sent)
                #expect(bed.allAcks.count == 3, "no daemon, no acks: \(bed.allAcks.suffix(5))")

                try await bed.gateway.start()
                let acks = try await bed.waitForAcceptedAcks(eventIds: ids).filter { ids.contains($0.eventId ?? "") }
                #expect(acks.count == ids.count, "one ack per event: \(acks.count) for \(ids.count)")
                #expect(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").isEmpty,
                        "\(DeliveryCheck.ackProblems(acks, expectedStatus: "stored").prefix(10))")
                #expect(Set(acks.compactMap(\.eventId)) == ids)

                let upstream = try await bed.waitForUpstream(eventIds: ids)
                DeliveryCheck.expectOrderedDelivery(upstream, sent: sent)
                let sentById = Dictionary(uniqueKeysWithValues: sent.values.joined().map { ($0.eventId, $0) })
                let fieldProblems = upstream.filter { ids.contains($0.eventId ?? "") }.flatMap { event in
                    event.problems(comparedTo: sentById[event.eventId!]!, hubId: TestBed.hubId).map { "\(event.eventId!): \($0)" }
                }
                #expect(fieldProblems.isEmpty, "\(fieldProblems.prefix(10))")
            }
        }

        /// Publishes each device's events in rounds of `perRound` (one `mosquitto_pub` per round), devices
        /// concurrently, each in order. A round whose publisher fails (no broker to connect to, or it went away)
        /// is published again whole after a pause, as a device resends what was not confirmed: events the daemon
        /// already stored then get `duplicate`. Returns how many rounds were published again.
        static func publishInRounds(_ batches: [(DeviceClient, [DeviceEvent])], perRound: Int, interval: Duration) async throws -> Int {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for (client, events) in batches {
                    group.addTask {
                        var again = 0
                        for start in stride(from: 0, to: events.count, by: perRound) {
                            let round = Array(events[start..<min(start + perRound, events.count)])
                            let deadline = ContinuousClock.now + .seconds(60)
                            while true {
                                do {
                                    try await client.publish(round, interval: interval)
                                    break
                                } catch is CancellationError {
                                    throw CancellationError()
                                } catch {
                                    guard ContinuousClock.now < deadline else {
                                        throw HarnessError("round from \(round[0].eventId) never went through: \(error)")
                                    }
                                    again += 1
                                    try await Task.sleep(for: .milliseconds(200))
                                }
                            }
                        }
                        return again
                    }
                }
                return try await group.reduce(0, +)
            }
        }
    }
}
