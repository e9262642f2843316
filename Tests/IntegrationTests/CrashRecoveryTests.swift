import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct CrashRecoveryTests {
        @Test func everyEventAckedStoredBeforeAndAfterASIGKILLArrivesUpstreamInPerDeviceOrder() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.make(in: sandbox)
                // What the devices publish, as the device broker sees it; subscribed before the daemon's
                // first connection, so the recorder's probe is not in the daemon's session.
                let published = TopicRecorder("events", brokerPort: bed.deviceBroker.port, filters: ["device/+/event"], in: sandbox)
                try await published.start()
                try await bed.gateway.start()
                let devices = (1...4).map { "crash-\($0)" }
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 60)) })

                // Devices keep publishing (paced) while the daemon is killed and restarted; the device broker
                // queues their messages for the daemon's persistent session meanwhile.
                let batches = bed.batches(sent)
                let publishing = Task { try await DeviceClient.publishConcurrently(batches, interval: .milliseconds(15)) }
                defer { publishing.cancel() }
                try await bed.waitForAcks(count: 60)
                bed.gateway.kill()
                let acksAtKill = bed.allAcks.count
                // Devices go on publishing while the daemon is down: the broker queues for its session.
                let publishedAtKill = published.messages.count
                try await published.waitFor(count: min(publishedAtKill + 40, 240))
                try await bed.gateway.start()
                try await publishing.value

                // The broker keeps each device's messages in order for the daemon's session (and hands
                // it again what it had not acknowledged at the kill), so once every device's sentinel is
                // acked, every ack that will come for what they sent before has come.
                try await bed.settle(through: devices)
                let acks = bed.allAcks
                let rejected = acks.filter { $0.status == "rejected" }
                #expect(rejected.isEmpty, "rejected after restart: \(rejected.prefix(5))")
                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks).prefix(10))")

                let storedIds = Set(acks.filter(\.isStored).compactMap(\.eventId))
                let upstream = try await bed.waitForUpstream(eventIds: storedIds, timeout: .seconds(60))
                // A late repeat would have been forwarded before its device's sentinel.
                try await bed.settle(through: devices)
                let arrived = bed.upstreamEvents
                #expect(DeliveryCheck.orderProblems(arrived, sent: sent).isEmpty,
                        "\(DeliveryCheck.orderProblems(arrived, sent: sent))")
                #expect(DeliveryCheck.repeatProblems(arrived).isEmpty, "\(DeliveryCheck.repeatProblems(arrived).prefix(5))")

                let allIds = Set(sent.values.joined().map(\.eventId))
                let neverAcked = allIds.subtracting(TestBed.acceptedIds(acks))
                print("""
                    crash test: \(acksAtKill) acks before SIGKILL, \(acks.count) acks in all, \
                    \(storedIds.count) stored, \(upstream.count) upstream messages (\(arrived.count) after settling), \
                    \(neverAcked.count) of \(allIds.count) events never acked: \(neverAcked.sorted().prefix(10))
                    """)
            }
        }
    }
}
