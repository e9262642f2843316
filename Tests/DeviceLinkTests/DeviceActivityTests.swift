import DeviceLink
import GatewayCore
import Testing

@Suite struct DeviceActivityTests {
    @Test func devicesAreListedMostRecentFirstWithTheirCounts() throws {
        let activity = DeviceActivity(maxDevices: 10)
        let a = try #require(DeviceID("a"))
        let b = try #require(DeviceID("b"))
        activity.record(a, channel: "event", atMs: 1000)
        activity.record(b, channel: "telemetry", rejected: true, atMs: 2000)
        activity.record(a, channel: "audio", atMs: 3000)
        let all = activity.all
        #expect(all.map(\.deviceId) == ["a", "b"])
        #expect(all[0].lastSeenMs == 3000 && all[0].lastChannel == "audio" && all[0].messages == 2 && all[0].rejected == 0)
        #expect(all[1].rejected == 1)
    }

    @Test func pastTheLimitTheDeviceHeardFromLongestAgoIsForgotten() throws {
        // A flood of made-up device ids cannot grow memory past admin.maxDevicesListed.
        let activity = DeviceActivity(maxDevices: 3)
        for index in 0..<10 {
            activity.record(try #require(DeviceID("d\(index)")), channel: "event", atMs: Int64(index))
        }
        #expect(activity.count == 3)
        #expect(activity.all.map(\.deviceId) == ["d9", "d8", "d7"])
    }

    @Test func aDeviceComingOnlineIsAnnouncedOnceUntilItGoesAwayAgain() async throws {
        let activity = DeviceActivity(maxDevices: 10, presenceSeconds: 60)
        let quiet = try #require(DeviceID("quiet")), announcer = try #require(DeviceID("announcer"))
        // A device that never announces: online with its first message, again after 60 s of silence.
        activity.record(quiet, channel: "event", atMs: 1_000)
        activity.record(quiet, channel: "event", atMs: 30_000)
        #expect(activity.isOnline(quiet, nowMs: 90_000) && !activity.isOnline(quiet, nowMs: 90_001))
        activity.record(quiet, channel: "telemetry", atMs: 100_000)
        // One that announces: online from true until false, whatever it sends meanwhile.
        activity.announce(announcer, online: false, atMs: 100_000)
        #expect(!activity.isOnline(announcer, nowMs: 100_000))
        activity.record(announcer, channel: "event", atMs: 100_001)
        activity.announce(announcer, online: true, atMs: 100_002)
        activity.announce(announcer, online: true, atMs: 100_003)
        #expect(activity.isOnline(announcer, nowMs: 999_999_999))
        #expect(!activity.isOnline(try #require(DeviceID("never")), nowMs: 1))

        var arrivals = activity.arrivals.makeAsyncIterator()
        var seen: [String] = []
        for _ in 0..<3 { seen.append(try #require(await arrivals.next()).rawValue) }
        #expect(seen == ["quiet", "quiet", "announcer"])
    }
}
