import Foundation

/// A scalar in the daemon's YAML configuration.
enum YAMLScalar: Sendable, Equatable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral, CustomStringConvertible
{
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    /// Written as is, without quotes: for deliberately invalid values such as `notanumber`.
    case raw(String)

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(floatLiteral value: Double) { self = .double(value) }

    var description: String {
        switch self {
        case .string(let value):
            let escaped = value.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\""
        case .int(let value): return String(value)
        case .double(let value): return String(value)
        case .bool(let value): return value ? "true" : "false"
        case .raw(let value): return value
        }
    }
}

/// Configuration values by dotted key (`store.maxBytes`), written out as the nested YAML the daemon reads.
///
/// ```swift
/// var config: GatewayConfig = ["store.whenFull": "rejectNew", "store.maxBytes": 20000]
/// config["log.level"] = "trace"
/// ```
struct GatewayConfig: Sendable, ExpressibleByDictionaryLiteral {
    private(set) var values: [String: YAMLScalar] = [:]

    init(dictionaryLiteral elements: (String, YAMLScalar)...) {
        for (key, value) in elements { values[key] = value }
    }

    subscript(key: String) -> YAMLScalar? {
        get { values[key] }
        set { values[key] = newValue }
    }

    /// `self` with every value of `overrides` replacing the value under the same key.
    func merging(_ overrides: GatewayConfig) -> GatewayConfig {
        var merged = self
        merged.values.merge(overrides.values) { _, new in new }
        return merged
    }

    var yaml: String {
        var lines: [String] = []
        var written: [String] = []  // path of mappings already opened
        // Sorting by path components keeps every mapping's keys together.
        let paths = values.keys.map { $0.split(separator: ".").map(String.init) }
            .sorted { $0.lexicographicallyPrecedes($1) }
        for path in paths {
            let key = path.joined(separator: ".")
            let parents = Array(path.dropLast())
            var common = 0
            while common < min(parents.count, written.count), parents[common] == written[common] {
                common += 1
            }
            for depth in common..<parents.count {
                lines.append(String(repeating: "  ", count: depth) + parents[depth] + ":")
            }
            written = parents
            lines.append(String(repeating: "  ", count: parents.count) + "\(path.last!): \(values[key]!)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func write(to url: URL) throws {
        try yaml.write(to: url, atomically: true, encoding: .utf8)
    }
}
