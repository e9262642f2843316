import CloudToDevice
import Commands
import Foundation

extension CommandsConfiguration {
    /// `commands.*` (CONTRACTS.md §6; Sources/Commands/README.md).
    init(_ v: inout ConfigValues) {
        self.init()
        enabled = v.bool("commands.enabled", default: enabled)
        topic = v.string("commands.topic", default: topic)
        if let problem = CloudTopic.problem(in: topic) {
            v.fail("commands.topic", "'\(topic)' \(problem)")
        }
        maxPayloadBytes = v.int("commands.maxPayloadBytes", default: maxPayloadBytes, range: 256...1_048_576)
        maxPerDevice = v.int("commands.maxPerDevice", default: maxPerDevice, range: 1...100_000)
        maxTotal = v.int("commands.maxTotal", default: maxTotal, range: 1...1_000_000)
        inflightPerDevice = v.int("commands.inflightPerDevice", default: inflightPerDevice, range: 1...1000)
        ackTimeoutSeconds = v.int("commands.ackTimeoutSeconds", default: ackTimeoutSeconds, range: 1...86_400)
        retentionSeconds = v.int("commands.retentionSeconds", default: retentionSeconds, range: 60...31_536_000)
        maxTtlSeconds = v.int("commands.maxTtlSeconds", default: maxTtlSeconds, range: 1...31_536_000)
        if maxPerDevice > maxTotal {
            v.warn("commands.maxPerDevice", "\(maxPerDevice) is above commands.maxTotal (\(maxTotal)): the hub's cap is reached first")
        }
    }

    /// `commands.statePath`: the commands' store; empty puts `commands.db` beside the outbox.
    static func statePath(_ v: inout ConfigValues, storePath: String) -> String {
        var path = v.string("commands.statePath", default: "")
        if path.isEmpty {
            path = ((storePath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("commands.db")
            v.resolve("commands.statePath", to: path, "empty: commands.db beside the outbox")
        }
        return path
    }
}
