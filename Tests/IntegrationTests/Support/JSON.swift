import Foundation

/// Small JSONSerialization helpers: decoding payloads, writing compact lines, comparing values.
enum JSON {
    /// The payload as a JSON object, or nil when it is not one.
    static func object(_ text: String) -> [String: Any]? {
        object(Data(text.utf8))
    }

    static func object(_ data: Data) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) as? [String: Any]
    }

    /// Any JSON value (object, array, string, number, bool, `NSNull`).
    static func value(_ text: String) -> Any? {
        try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    /// One line of compact JSON with sorted keys.
    static func line(_ value: Any) -> String {
        let data = try! JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// Canonical text of a JSON value, so two decoded values can be compared for equality.
    static func canonical(_ value: Any?) -> String {
        guard let value else { return "<absent>" }
        return line(value)
    }

    static func string(_ value: Any?) -> String? { value as? String }

    static func int(_ value: Any?) -> Int? {
        if let value = value as? Int { return value }
        return (value as? NSNumber)?.intValue
    }
}
