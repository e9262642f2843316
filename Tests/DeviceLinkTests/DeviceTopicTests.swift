import DeviceLink
import GatewayCore
import Testing

@Suite struct DeviceTopicTests {
    @Test func parsesEventAndTelemetryTopics() throws {
        let event = try DeviceTopic.parse("device/abc/event").get()
        #expect(event.device.rawValue == "abc")
        #expect(event.channel == .event)
        #expect(try DeviceTopic.parse("device/x_1/telemetry").get().channel == .telemetry)
    }

    @Test func reportsInvalidDeviceIDWithEscapedLevel() {
        #expect(DeviceTopic.parse("device/bad.id/event") == .failure(.invalidDeviceID(escaped: "bad.id")))
        #expect(DeviceTopic.parse("device//event") == .failure(.invalidDeviceID(escaped: "")))
    }

    @Test func parsesTheCommandAndShadowChannelsOfTwoLevels() throws {
        #expect(try DeviceTopic.parse("device/d1/command/result").get() == DeviceTopic(device: DeviceID("d1")!, channel: .commandResult))
        #expect(try DeviceTopic.parse("device/d1/shadow/report").get().channel == .shadowReport)
        #expect(try DeviceTopic.parse("device/d1/shadow/get").get().channel == .shadowGet)
    }

    @Test(arguments: [
        "device/a/b/event", "devices/a/event", "device/a/unknown", "device/a",
        // What the gateway sends, and near misses of the two-level channels.
        "device/a/command", "device/a/shadow/delta", "device/a/shadow", "device/a/command/result/x", "device/a/command/",
    ])
    func refusesOtherTopics(_ topic: String) {
        #expect(DeviceTopic.parse(topic) == .failure(.notADeviceTopic(escaped: topic)))
    }

    @Test func buildsTheTopicsTheGatewayAnswersOn() {
        let device = DeviceID("d1")!
        #expect(DeviceTopic.ack(for: device) == "device/d1/ack")
        #expect(DeviceTopic.response(for: device) == "device/d1/response")
        #expect(DeviceTopic(device: device, channel: .audio).topic == "device/d1/audio")
        #expect(DeviceTopic.prefix(of: device) == "device/d1/")
        #expect(DeviceTopic.command(for: device) == "device/d1/command")
        #expect(DeviceTopic.shadowDelta(for: device) == "device/d1/shadow/delta")
        #expect(DeviceTopic.shadow(for: device) == "device/d1/shadow")
    }

    @Test func buildsSubscriptionFiltersAndTheHubsListenTopic() {
        #expect(DeviceTopic.filter(.event) == "device/+/event")
        #expect(DeviceTopic.filter(.register) == "device/+/register")
        #expect(DeviceTopic.listen(hubID: "hub-1") == "hub/hub-1/listen")
    }

    @Test func aBuiltTopicParsesBackToItsDeviceAndChannel() throws {
        for channel in DeviceTopic.Channel.allCases {
            let topic = DeviceTopic(device: DeviceID("dev_1-x")!, channel: channel)
            #expect(try DeviceTopic.parse(topic.topic).get() == topic)
        }
    }
}
