import Logging
import Reporting
import Testing

@Suite struct RecentLogTests {
    @Test func keepsWarningsAndWorseNewestFirstAndIgnoresTheRest() {
        let log = RecentLog(capacity: 10)
        log.record(level: .info, logger: "a", message: "started", metadata: nil, atMs: 1)
        log.record(level: .notice, logger: "a", message: "noticed", metadata: nil, atMs: 2)
        log.record(level: .warning, logger: "a", message: "disk low", metadata: ["free": "10 MB", "path": "/var"], atMs: 3)
        log.record(level: .critical, logger: "b", message: "stopped", metadata: nil, atMs: 4)
        #expect(log.all.map(\.message) == ["stopped", "disk low"])
        #expect(log.all.last?.details == "free=10 MB path=/var")
        #expect(log.all.first?.level == "critical" && log.all.first?.logger == "b")
    }

    @Test func aRepeatOfTheNewestIsCountedInsteadOfPushingTheOthersOut() {
        let log = RecentLog(capacity: 2)
        log.record(level: .error, logger: "a", message: "first", metadata: nil, atMs: 1)
        for ms in 2...1_000 {
            log.record(level: .warning, logger: "mqtt", message: "connect failed", metadata: ["attempt": "\(ms)"], atMs: Int64(ms))
        }
        #expect(log.all.count == 2)
        #expect(log.all[0].count == 999 && log.all[0].ts == 1_000 && log.all[0].details == "attempt=1000")
        #expect(log.all[1].message == "first")
    }

    @Test func isBoundedInEntriesAndInTextLength() {
        let log = RecentLog(capacity: 3)
        for index in 0..<10 {
            log.record(level: .error, logger: "a", message: "problem \(index)", metadata: nil)
        }
        #expect(log.all.map(\.message) == ["problem 9", "problem 8", "problem 7"])
        log.record(level: .error, logger: "a", message: String(repeating: "x", count: 100_000), metadata: ["k": "\(String(repeating: "y", count: 100_000))"])
        #expect(log.all[0].message.count == RecentLog.maxTextLength && log.all[0].message.hasSuffix("…"))
        #expect(log.all[0].details.count == RecentLog.maxTextLength)
    }
}
