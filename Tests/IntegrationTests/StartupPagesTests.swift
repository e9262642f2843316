import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// `memory.releaseStartupPagesSeconds`: once start-up is over, the pages of the executable it
    /// mapped go back to the kernel (madvise MADV_PAGEOUT), and the daemon goes on as before: what
    /// it runs faults back in from the file.
    @Suite struct StartupPagesTests {
        /// The Rss (kB) of the process's mappings of its own executable, read from outside.
        static func executableResidentKB(pid: Int32) throws -> Int {
            let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")
            let smaps = try String(contentsOfFile: "/proc/\(pid)/smaps", encoding: .utf8)
            var total = 0
            var inside = false
            for line in smaps.split(separator: "\n") {
                if let first = line.first, first.isHexDigit, !first.isUppercase {
                    let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
                    inside = fields.count == 6 && fields[5].trimmingCharacters(in: .whitespaces) == exe
                } else if inside, line.hasPrefix("Rss:") {
                    total += Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
                }
            }
            return total
        }

        /// A `key=value` number from the daemon's log line that contains `text`.
        static func logged(_ key: String, in log: String, line text: String) -> Int? {
            guard let line = log.split(separator: "\n").last(where: { $0.contains(text) }),
                let range = line.range(of: "\(key)=")
            else { return nil }
            return Int(line[range.upperBound...].prefix { $0.isNumber })
        }

        @Test func theStartupPagesGoBackToTheKernelAndTheDaemonGoesOn() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["memory.releaseStartupPagesSeconds": 3])
                let pid = try #require(bed.gateway.pid)
                // Start-up's pages are mapped, and those of a first event's path.
                let first = DeviceEvent.series(deviceId: "pages-1", count: 3)
                try await bed.device("pages-1").publish(first)
                _ = try await bed.waitForAcks(count: 3)
                let before = try Self.executableResidentKB(pid: pid)

                let line = "handed the executable's start-up pages back to the kernel"
                try await bed.gateway.waitForLog(line)
                let after = try Self.executableResidentKB(pid: pid)
                let log = bed.gateway.currentRunLog
                let loggedBefore = try #require(Self.logged("resident_before_kB", in: log, line: line), "\(bed.gateway.logTail())")
                let loggedAfter = try #require(Self.logged("resident_after_kB", in: log, line: line), "\(bed.gateway.logTail())")
                // The daemon's own count and the view from outside agree: far fewer pages mapped.
                #expect(loggedAfter < loggedBefore / 2, "logged \(loggedBefore) kB -> \(loggedAfter) kB")
                #expect(after < before, "outside: \(before) kB before, \(after) kB after")

                // Nothing the process wrote was lost and everything runs on: more events of the same
                // and of a new device are stored, acked and forwarded, in order.
                let more = DeviceEvent.series(deviceId: "pages-1", count: 3, from: 3)
                let other = DeviceEvent.series(deviceId: "pages-2", count: 3)
                try await bed.device("pages-1").publish(more)
                try await bed.device("pages-2").publish(other)
                let acks = try await bed.waitForAcks(count: 9)
                #expect(acks.allSatisfy { $0.status == "stored" }, "\(acks)")
                try await bed.settle(through: "pages-1", "pages-2")
                #expect(bed.upstreamEvents.filter { $0.deviceId == "pages-1" }.compactMap(\.eventId) == (first + more).map(\.eventId), "\(bed.upstreamEvents)")
                #expect(bed.upstreamEvents.filter { $0.deviceId == "pages-2" }.compactMap(\.eventId) == other.map(\.eventId), "\(bed.upstreamEvents)")
                #expect(bed.gateway.isRunning)
                #expect(bed.gateway.currentRunLogCount(of: line) == 1, "released once")
            }
        }

        /// The countdown starts when the daemon is ready (its first device subscription), not when it
        /// starts: a start that waits for its broker releases nothing meanwhile, and after the
        /// release the daemon still has the pages of its first connection's path to fault back.
        @Test func theCountdownStartsWhenTheDaemonIsReady() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.make(in: sandbox, overrides: ["memory.releaseStartupPagesSeconds": 1])
                try await bed.deviceBroker.stop()
                try await bed.gateway.start(isReady: { true })
                try await bed.gateway.waitForLog("cannot connect to the MQTT broker")
                // Without the broker the daemon is not ready, so nothing goes back: the release must not
                // come within three times the key (counted from the start, it would come after one).
                let line = "handed the executable's start-up pages back to the kernel"
                let gateway = bed.gateway
                await #expect(throws: HarnessError.self, "released before the daemon was ready") {
                    try await Poll.until("a release before READY", timeout: .seconds(3)) { gateway.currentRunLogCount(of: line) > 0 }
                }
                #expect(bed.gateway.isRunning)

                try await bed.deviceBroker.start()
                try await bed.gateway.waitForLog("gateway ready")
                try await bed.gateway.waitForLog(line)
                let log = bed.gateway.currentRunLog
                let ready = try #require(log.range(of: "gateway ready"))
                let released = try #require(log.range(of: line))
                #expect(ready.upperBound <= released.lowerBound, "released before ready:\n\(bed.gateway.logTail())")

                let events = DeviceEvent.series(deviceId: "pages-late", count: 3)
                try await bed.device("pages-late").publish(events)
                let acks = try await bed.waitForAcks(count: 3)
                #expect(acks.allSatisfy { $0.status == "stored" }, "\(acks)")
            }
        }
    }
}
