import GatewayCore
import Testing

@Suite struct DeviceIDTests {
    @Test(arguments: ["a", "dev-1", "DEV_2", String(repeating: "x", count: 64)])
    func acceptsValidIdentifiers(_ id: String) {
        #expect(DeviceID(id)?.rawValue == id)
    }

    @Test(arguments: ["", "a/b", "+", "#", "dev.1", "dév", "a b", String(repeating: "x", count: 65)])
    func rejectsInvalidIdentifiers(_ id: String) {
        #expect(DeviceID(id) == nil)
    }

    @Test func escapesUntrustedBytesForLogs() {
        let escaped = DeviceID.escapedForLog([0x61, 0x0A, 0xFF, UInt8(ascii: "\\")])
        #expect(escaped == "a\\x0A\\xFF\\x5C")
    }
}

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

    @Test(arguments: ["device/a/b/event", "devices/a/event", "device/a/unknown", "device/a"])
    func refusesOtherTopics(_ topic: String) {
        #expect(DeviceTopic.parse(topic) == .failure(.notADeviceTopic))
    }

    @Test func buildsAckTopic() {
        #expect(DeviceTopic.ack(for: DeviceID("d1")!) == "device/d1/ack")
    }
}
