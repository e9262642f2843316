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
}
