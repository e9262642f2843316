import BrokerTestSupport
import Foundation
import Testing

/// The journal's socket path is fixed in libsystemd; the test plays journald there, so it runs only
/// on a machine without a running journald (CI and the build machine have none).
private let journalSocketPath = "/run/systemd/journal/socket"
private let journalIsFree = !FileManager.default.fileExists(atPath: journalSocketPath)

extension IntegrationSuite {
    @Suite(.enabled(if: journalIsFree, "a real journald owns \(journalSocketPath)"))
    struct JournaldTests {
        @Test func journaldFormatSendsRecordsWithPriorityAndDeviceAndEventFields() async throws {
            try FileManager.default.createDirectory(atPath: "/run/systemd/journal", withIntermediateDirectories: true)
            let journal = try NotifySocket(path: journalSocketPath)
            defer {
                journal.close()
                try? FileManager.default.removeItem(atPath: "/run/systemd/journal")
            }
            try await withSandbox { sandbox in
                try await Self.run(in: sandbox, journal: journal)
            }
        }

        private static func run(in sandbox: Sandbox, journal: NotifySocket) async throws {
            let bed = try await TestBed.make(in: sandbox, overrides: ["log.format": "journald", "log.level": "info"])
            try await bed.gateway.start(isReady: { journal.datagrams.contains { $0.contains("MESSAGE=gateway ready\n") } })
            // One valid event is stored; one with an empty type is rejected and logged with its ids.
            try await bed.device("jd-1").publish(lines: [#"{"eventId":"ok-1","type":"t"}"#, #"{"eventId":"bad-1","type":""}"#])
            try await bed.waitForAcks(count: 2)
            try await journal.waitFor("the rejection record") { $0 == "MESSAGE=rejected device event" }

            let rejection = record(journal, message: "rejected device event")
            #expect(rejection.contains("PRIORITY=4"), "\(rejection)")
            #expect(rejection.contains("DEVICE_ID=jd-1"), "\(rejection)")
            #expect(rejection.contains("EVENT_ID=bad-1"), "\(rejection)")
            #expect(rejection.contains("SYSLOG_IDENTIFIER=edge-gateway"), "\(rejection)")
            // libsystemd's own location fields are suppressed: one CODE_FILE per record, ours.
            #expect(rejection.filter { $0.hasPrefix("CODE_FILE=") }.count == 1, "\(rejection)")
            #expect(record(journal, message: "gateway ready").contains("PRIORITY=6"))

            let exit = try await bed.gateway.terminate()
            #expect(exit == .exited(0))
        }

        /// The fields of the first journal record with this MESSAGE.
        private static func record(_ journal: NotifySocket, message: String) -> [String] {
            let datagram = journal.datagrams.first { $0.contains("MESSAGE=\(message)\n") } ?? ""
            return datagram.split(separator: "\n").map(String.init)
        }
    }
}
