/// Renders the upstream topic template (`hubs/{hubId}/events/{deviceId}` by default).
public struct UpstreamTopicTemplate: Sendable {
    public let template: String
    private let parts: [Part]

    private enum Part: Sendable {
        case literal(String)
        case hubID
        case deviceID
    }

    public static let placeholders = ["{hubId}", "{deviceId}"]

    public init(_ template: String) {
        self.template = template
        var parts: [Part] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            if let close = rest[open...].firstIndex(of: "}") {
                let name = rest[open...close]
                if name == "{hubId}" || name == "{deviceId}" {
                    if open > rest.startIndex { parts.append(.literal(String(rest[..<open]))) }
                    parts.append(name == "{hubId}" ? .hubID : .deviceID)
                    rest = rest[rest.index(after: close)...]
                    continue
                }
            }
            parts.append(.literal(String(rest[...open])))
            rest = rest[rest.index(after: open)...]
        }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        self.parts = parts
    }

    public func render(hubID: String, deviceID: String) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let text): out += text
            case .hubID: out += hubID
            case .deviceID: out += deviceID
            }
        }
        return out
    }

    /// Names unknown `{…}` placeholders or MQTT wildcards, which a publish topic must not contain.
    public func validate() -> String? {
        if template.isEmpty { return "must not be empty" }
        if template.contains("+") || template.contains("#") { return "must not contain MQTT wildcards (+, #)" }
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { return "has an unclosed '{'" }
            let name = String(rest[open...close])
            if !Self.placeholders.contains(name) { return "unknown placeholder \(name) (known: {hubId}, {deviceId})" }
            rest = rest[rest.index(after: close)...]
        }
        return nil
    }
}
