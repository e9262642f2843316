import CloudToDevice
import Foundation
import Shadow

extension ShadowConfiguration {
    /// `shadow.*` (CONTRACTS.md §7; Sources/Shadow/README.md).
    init(_ v: inout ConfigValues) {
        self.init()
        enabled = v.bool("shadow.enabled", default: enabled)
        maxBytes = v.int("shadow.maxBytes", default: maxBytes, range: 256...1_048_576)
        maxMessageBytes = v.int("shadow.maxMessageBytes", default: maxMessageBytes, range: 256...1_048_576)
        maxDevices = v.int("shadow.maxDevices", default: maxDevices, range: 1...1_000_000)
    }

    /// `shadow.topic`: the devices' shadows upstream (`+` the device id).
    static func topic(_ v: inout ConfigValues) -> String {
        let topic = v.string("shadow.topic", default: "hubs/{hubId}/shadow/+")
        if let problem = CloudTopic.problem(in: topic) {
            v.fail("shadow.topic", "'\(topic)' \(problem)")
        }
        return topic
    }

    /// `shadow.statePath`: the documents' store; empty puts `shadows.db` beside the outbox.
    static func statePath(_ v: inout ConfigValues, storePath: String) -> String {
        var path = v.string("shadow.statePath", default: "")
        if path.isEmpty {
            path = ((storePath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("shadows.db")
            v.resolve("shadow.statePath", to: path, "empty: shadows.db beside the outbox")
        }
        return path
    }
}
