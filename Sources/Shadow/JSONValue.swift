/// A JSON value as the shadow keeps it: objects keep their members in the order they arrived
/// (``JSONObject``) and numbers keep the text they arrived as (``JSONNumber``), so a 64-bit id or
/// a decimal goes out exactly as it came in.
///
/// Values come from ``parse(_:maxBytes:maxDepth:)`` (strict and bounded, for what devices and the
/// cloud send) and go out through ``encoded()`` (compact, deterministic bytes).
///
/// Equality is JSON's, not the text's: objects are equal when they have the same keys (compared
/// byte for byte, without Unicode normalization) with equal values in any order; numbers are
/// equal when they denote the same decimal value (see ``JSONNumber``); arrays compare element by
/// element in order.
///
/// ```swift
/// let value = try JSONValue.parse(Array(#"{"led": "on", "id": 18446744073709551615}"#.utf8), maxBytes: 8192)
/// value.object?["id"]?.encoded()   // the bytes 18446744073709551615, as received
/// ```
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// The object, when this value is one.
    public var object: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    /// Whether this value is `null`.
    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// How deep arrays and objects nest in this value (0 for a scalar, 1 for `[]` or `{}`).
    public var depth: Int {
        switch self {
        case .null, .bool, .number, .string: 0
        case .array(let elements): 1 + (elements.map(\.depth).max() ?? 0)
        case .object(let object): 1 + (object.members.map(\.value.depth).max() ?? 0)
        }
    }
}
