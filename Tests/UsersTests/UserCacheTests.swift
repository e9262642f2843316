import Foundation
import Logging
import Testing
import Users

@Suite final class UserCacheTests: Sendable {
    /// This test's directory, removed when the test is over.
    let directory = NSTemporaryDirectory() + "user-cache-\(UUID().uuidString)"

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func temporaryPath() -> String {
        directory + "/\(UUID().uuidString)/users.db"
    }

    @Test func recordsSurviveReopeningTheFile() async throws {
        let path = temporaryPath()
        do {
            let cache = try UserCache(path: path, maxEntries: 10)
            try await cache.store(UserRecord(id: "ada", name: "Ada", status: "active", blocked: false, deviceQuota: 3, deviceCount: 1), fetchedAt: 1000)
            try await cache.store(UserRecord(id: "eve", name: "Eve", blocked: true), fetchedAt: 2000)
        }
        let reopened = try UserCache(path: path, maxEntries: 10)
        let ada = try #require(try await reopened.record("ada"))
        #expect(ada.record == UserRecord(id: "ada", name: "Ada", status: "active", blocked: false, deviceQuota: 3, deviceCount: 1))
        #expect(ada.fetchedAt == 1000)
        #expect(try await reopened.record("eve")?.record.blocked == true)
        #expect(try await reopened.record("nobody") == nil)
        try await reopened.remove("eve")
        #expect(try await reopened.record("eve") == nil)
    }

    @Test func theLeastRecentlyFetchedGoFirstPastTheLimit() async throws {
        let cache = try UserCache(path: temporaryPath(), maxEntries: 3)
        for (index, id) in ["a", "b", "c", "d", "e"].enumerated() {
            try await cache.store(UserRecord(id: id), fetchedAt: Int64(index))
        }
        #expect(await cache.count == 3)
        #expect(try await cache.record("a") == nil)
        #expect(try await cache.record("b") == nil)
        #expect(try await cache.record("e") != nil)
        // Fetching "c" again makes it the newest; the next store pushes out "d".
        try await cache.store(UserRecord(id: "c"), fetchedAt: 10)
        try await cache.store(UserRecord(id: "f"), fetchedAt: 11)
        #expect(try await cache.record("c") != nil)
        #expect(try await cache.record("d") == nil)
    }

    @Test func aRecordWithOnlyAnIdIsReadWithNeutralDefaults() throws {
        let record = try JSONDecoder().decode(UserRecord.self, from: Data(#"{"id":"x","extra":1}"#.utf8))
        #expect(record == UserRecord(id: "x"))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(UserRecord.self, from: Data(#"{"name":"no id"}"#.utf8)) }
    }

    @Test func withoutAServiceLookupsAnswerFromTheCache() async throws {
        let cache = try UserCache(path: temporaryPath(), maxEntries: 10)
        try await cache.store(UserRecord(id: "ada", name: "Ada"))
        let directory = UserDirectory(configuration: UsersConfiguration(cachePath: ":memory:"), cache: cache, logger: Logger(label: "users-test"))
        let cached = await directory.lookup("ada")
        #expect(cached.record?.name == "Ada")
        if case .cached(_, let reason) = cached { #expect(reason.contains("users.baseUrl")) } else { Issue.record("expected a cached answer, got \(cached)") }
        #expect(await directory.lookup("nobody") == .unavailable(reason: "no user service configured (users.baseUrl)"))
    }
}
