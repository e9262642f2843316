import BrokerTestSupport
import Foundation
import MLFake
import Testing

extension IntegrationSuite {
    /// The unit bounds the daemon (`MemoryHigh=`, `MemoryMax=`, `TasksMax=`: issue 12), and the
    /// bounds leave room for what the daemon really uses with every part on and dialogs under way,
    /// so they stop a runaway without stopping the gateway.
    @Suite struct UnitLimitsTests {
        /// `KEY=` values of the shipped unit, in bytes or counts.
        static func unitLimits() throws -> [String: Int] {
            let unit = try String(
                contentsOf: GatewayBinary.packageRoot.appendingPathComponent("systemd/edge-gateway.service"), encoding: .utf8)
            var limits: [String: Int] = [:]
            for line in unit.split(separator: "\n") {
                let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, ["MemoryHigh", "MemoryMax", "TasksMax"].contains(parts[0]) else { continue }
                let value = parts[1]
                let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
                if let last = value.last, let factor = units[last], let number = Int(value.dropLast()) {
                    limits[parts[0]] = number * factor
                } else if let number = Int(value) {
                    limits[parts[0]] = number
                }
            }
            return limits
        }

        /// `Threads` and `VmRSS` (bytes) of a running process.
        static func usage(of pid: Int32) throws -> (threads: Int, rss: Int) {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            func field(_ name: String) -> Int {
                status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
                    .flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") } ?? 0
            }
            return (field("Threads"), field("VmRSS") * 1024)
        }

        @Test func theUnitBoundsMemoryAndTasksWithRoomOverWhatTheDaemonUses() async throws {
            let limits = try Self.unitLimits()
            let high = try #require(limits["MemoryHigh"], "MemoryHigh= in the unit")
            let max = try #require(limits["MemoryMax"], "MemoryMax= in the unit")
            let tasks = try #require(limits["TasksMax"], "TasksMax= in the unit")
            #expect(high < max)
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.maxSessions": 8])
                // Eight dialogs at once, while events flow.
                var devices: [AudioDevice] = []
                for index in 0..<8 { devices.append(try await voice.device("load-\(index)")) }
                let frames = try voice.opusFrames
                var sessions: [(String, UUID)] = []
                for device in devices {
                    sessions.append((device.id, try await device.speak(frames: frames, interval: .zero)))
                }
                try await voice.bed.device("load-events").publish((0..<200).map { DeviceEvent(deviceId: "load-events", seq: $0) })
                var peak = (threads: 0, rss: 0)
                for (device, session) in sessions {
                    let now = try Self.usage(of: try #require(voice.bed.gateway.pid))
                    peak = (Swift.max(peak.threads, now.threads), Swift.max(peak.rss, now.rss))
                    #expect(try await voice.answer(device: device, session: session).type == "DIALOG_RESPONSE")
                }
                #expect(peak.threads > 0 && peak.threads * 2 <= tasks, "threads \(peak.threads), TasksMax=\(tasks)")
                // A debug build, so larger than the release build the unit runs; still well below.
                #expect(peak.rss > 0 && peak.rss * 2 <= high, "RSS \(peak.rss) bytes, MemoryHigh=\(high)")
                for device in devices { await device.close() }
                await ml.stop()
            }
        }
    }
}
