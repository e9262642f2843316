import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct CrashRecoveryTests {
        @Test func everyEventAckedStoredBeforeAndAfterASIGKILLArrivesUpstreamInPerDeviceOrder() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
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
                try await Task.sleep(for: .milliseconds(300))
                try await bed.gateway.start()
                try await publishing.value

                let acks = try await bed.acks.waitUntilQuiet(for: .seconds(3), timeout: .seconds(60)).map(Ack.init)
                let rejected = acks.filter { $0.status == "rejected" }
                #expect(rejected.isEmpty, "rejected after restart: \(rejected.prefix(5))")
                #expect(DeliveryCheck.ackProblems(acks).isEmpty, "\(DeliveryCheck.ackProblems(acks).prefix(10))")

                let storedIds = Set(acks.filter(\.isStored).compactMap(\.eventId))
                let upstream = try await bed.waitForUpstream(eventIds: storedIds, timeout: .seconds(60))
                try await Task.sleep(for: .seconds(1))
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
