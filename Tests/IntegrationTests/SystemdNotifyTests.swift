import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct SystemdNotifyTests {
        @Test func daemonSendsReadyStatusWatchdogAndStoppingToTheNotifySocket() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.make(in: sandbox)
                let notify = try NotifySocket()
                defer { notify.close() }
                // WATCHDOG_USEC of 1 s: the daemon must ping at least every 0.5 s.
                bed.gateway.extraEnvironment = ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"]
                try await bed.gateway.start()

                try await notify.waitFor("READY=1") { $0 == "READY=1" }
                try await notify.waitFor("STATUS=") { $0.hasPrefix("STATUS=") && $0.contains("outbox") }
                let firstWatchdog = notify.messages.filter { $0 == "WATCHDOG=1" }.count
                try await notify.waitFor("WATCHDOG=1") { $0 == "WATCHDOG=1" }
                // The pings go on: two more after the first seen.
                try await Poll.until("two more WATCHDOG=1", details: { "\(notify.messages)" }) {
                    notify.messages.filter { $0 == "WATCHDOG=1" }.count > firstWatchdog + 1
                }
                // READY comes only once the device subscription is in place.
                #expect(bed.gateway.currentRunLog.contains("MQTT subscribed"))

                let exit = try await bed.gateway.terminate()
                #expect(exit == .exited(0))
                try await notify.waitFor("STOPPING=1") { $0 == "STOPPING=1" }
                let order = notify.messages
                let ready = order.firstIndex(of: "READY=1") ?? Int.max
                let stopping = order.firstIndex(of: "STOPPING=1") ?? -1
                #expect(ready < stopping, "READY=1 before STOPPING=1: \(order)")
            }
        }
    }
}
