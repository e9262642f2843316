import GatewayCore

/// A topic family on the upstream broker with one level per device (CONTRACTS.md §6, §7):
/// `hubs/{hubId}/commands/+` (commands, `commands.topic`) or `hubs/{hubId}/shadow/+`, where `+` is the
/// device id. It gives the subscription filter, reads the device out of a received topic, and
/// builds the device's topics (`…/{deviceId}/status`, `…/{deviceId}/rejected`).
public struct CloudTopic: Sendable, Equatable {
    /// The template as configured.
    public let template: String
    /// What comes before and after the device level, `{hubId}` filled in.
    let prefix: String
    let suffix: String

    /// Why a template cannot be used; nil when it can.
    public static func problem(in template: String) -> String? {
        if template.contains("#") { return "must not contain '#'" }
        let levels = template.split(separator: "/", omittingEmptySubsequences: false)
        let wildcards = levels.filter { $0.contains("+") }
        guard wildcards.count == 1, wildcards[0] == "+" else {
            return "must have exactly one level that is '+' (the device id), as in hubs/{hubId}/commands/+"
        }
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { return "has an unclosed '{'" }
            if rest[open...close] != "{hubId}" { return "unknown placeholder \(rest[open...close]) (known: {hubId})" }
            rest = rest[rest.index(after: close)...]
        }
        if levels.contains(where: \.isEmpty) { return "must not have empty levels" }
        return nil
    }

    /// A template that passed ``problem(in:)``.
    public init(template: String, hubID: String) {
        self.template = template
        let filled = template.replacingOccurrences(of: "{hubId}", with: hubID)
        let levels = filled.split(separator: "/", omittingEmptySubsequences: false)
        let index = levels.firstIndex(of: "+") ?? levels.endIndex
        let before = levels[..<index].joined(separator: "/")
        let after = index < levels.endIndex ? levels[levels.index(after: index)...].joined(separator: "/") : ""
        prefix = before.isEmpty ? "" : before + "/"
        suffix = after.isEmpty ? "" : "/" + after
    }

    /// The subscription filter for every device, with `leaf` levels after the device's topic
    /// (`/update`), or none.
    public func filter(leaf: String = "") -> String { prefix + "+" + suffix + leaf }

    /// The topic of one device, with `leaf` levels after it (`/status`).
    public func topic(for device: DeviceID, leaf: String = "") -> String { prefix + device.rawValue + suffix + leaf }

    /// Why a received topic is not one of this family's.
    public enum Mismatch: Error, Equatable, Sendable {
        /// Not of the family (or not with `leaf`); escaped for logs.
        case otherTopic(escaped: String)
        /// The device level is not a valid device id; escaped for logs.
        case invalidDeviceID(escaped: String)
    }

    /// The device a received topic (with `leaf` after the device's topic) is for.
    public func device(in topic: some Collection<UInt8>, leaf: String = "") -> Result<DeviceID, Mismatch> {
        let bytes = Array(topic)
        let head = Array(prefix.utf8), tail = Array((suffix + leaf).utf8)
        guard bytes.count >= head.count + tail.count, bytes.starts(with: head), bytes.suffix(tail.count).elementsEqual(tail) else {
            return .failure(.otherTopic(escaped: DeviceID.escapedForLog(bytes)))
        }
        let level = bytes[head.count..<(bytes.count - tail.count)]
        guard let device = DeviceID(bytes: level) else {
            return .failure(.invalidDeviceID(escaped: DeviceID.escapedForLog(level)))
        }
        return .success(device)
    }
}
