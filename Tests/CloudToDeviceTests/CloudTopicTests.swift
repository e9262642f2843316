import CloudToDevice
import GatewayCore
import Testing

@Suite struct CloudTopicTests {
    let commands = CloudTopic(template: "hubs/{hubId}/commands/+", hubID: "hub-1")
    let device = DeviceID("lamp-1")!

    @Test func theCommandTopicGivesItsFilterAndTheDevicesTopics() {
        #expect(commands.filter() == "hubs/hub-1/commands/+")
        #expect(commands.topic(for: device) == "hubs/hub-1/commands/lamp-1")
        #expect(commands.topic(for: device, leaf: "/status") == "hubs/hub-1/commands/lamp-1/status")
        let shadow = CloudTopic(template: "hubs/{hubId}/shadow/+", hubID: "hub-1")
        #expect(shadow.filter(leaf: "/update") == "hubs/hub-1/shadow/+/update")
        #expect(shadow.topic(for: device, leaf: "/rejected") == "hubs/hub-1/shadow/lamp-1/rejected")
    }

    @Test func aReceivedTopicNamesItsDevice() throws {
        #expect(try commands.device(in: Array("hubs/hub-1/commands/lamp-1".utf8)).get() == device)
        let shadow = CloudTopic(template: "hubs/{hubId}/shadow/+", hubID: "hub-1")
        #expect(try shadow.device(in: Array("hubs/hub-1/shadow/lamp-1/update".utf8), leaf: "/update").get() == device)
        // A device level in the middle of the template.
        let middle = CloudTopic(template: "site/{hubId}/+/cmd", hubID: "h")
        #expect(middle.filter() == "site/h/+/cmd")
        #expect(try middle.device(in: Array("site/h/lamp-1/cmd".utf8)).get() == device)
    }

    @Test(arguments: [
        "hubs/hub-1/commands/lamp-1/status", "hubs/hub-2/commands/lamp-1", "hubs/hub-1/commands/", "hubs/hub-1/commands",
        "hubs/hub-1/commandslamp", "other",
    ])
    func otherTopicsAreNotTheFamilys(_ topic: String) {
        guard case .failure = commands.device(in: Array(topic.utf8)) else {
            Issue.record("\(topic) taken")
            return
        }
    }

    @Test func aBadDeviceLevelIsRefusedEscaped() {
        #expect(commands.device(in: Array("hubs/hub-1/commands/a/b".utf8)) == .failure(.invalidDeviceID(escaped: "a/b")))
        #expect(commands.device(in: Array("hubs/hub-1/commands/\(String(repeating: "x", count: 65))".utf8)).map(\.rawValue) != .success(String(repeating: "x", count: 65)))
    }

    @Test(arguments: [
        ("hubs/{hubId}/commands/#", "must not contain '#'"),
        ("hubs/{hubId}/commands", "must have exactly one level that is '+' (the device id), as in hubs/{hubId}/commands/+"),
        ("hubs/+/commands/+", "must have exactly one level that is '+' (the device id), as in hubs/{hubId}/commands/+"),
        ("hubs/{hubId}/cmd+/x", "must have exactly one level that is '+' (the device id), as in hubs/{hubId}/commands/+"),
        ("hubs/{hub}/commands/+", "unknown placeholder {hub} (known: {hubId})"),
        ("hubs//commands/+", "must not have empty levels"),
    ])
    func unusableTemplatesAreNamed(_ template: String, _ problem: String) {
        #expect(CloudTopic.problem(in: template) == problem)
    }

    @Test func theDefaultTemplatesAreUsable() {
        #expect(CloudTopic.problem(in: "hubs/{hubId}/commands/+") == nil)
        #expect(CloudTopic.problem(in: "hubs/{hubId}/shadow/+") == nil)
    }
}
