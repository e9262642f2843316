/// Writes JSON text by hand for the few fixed shapes the gateway emits on hot paths (acks and
/// upstream envelopes), so raw device `data` can be embedded without re-encoding.
public struct JSONText: Sendable {
    public private(set) var bytes: [UInt8]
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    public mutating func field(_ key: StaticString, string value: String) {
        key_(key)
        Self.appendString(value, to: &bytes)
    }

    public mutating func field(_ key: StaticString, int value: Int64) {
        key_(key)
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func field(_ key: StaticString, int value: Int64?) {
        guard let value else { return null(key) }
        field(key, int: value)
    }

    public mutating func field(_ key: StaticString, string value: String?) {
        guard let value else { return null(key) }
        field(key, string: value)
    }

    /// Embeds already-valid JSON bytes.
    public mutating func field(_ key: StaticString, rawJSON value: some Sequence<UInt8>) {
        key_(key)
        bytes.append(contentsOf: value)
    }

    /// A number in its shortest form that reads back as the same `Float`; NaN and infinities,
    /// which JSON cannot carry, become null.
    public mutating func field(_ key: StaticString, float value: Float) {
        guard value.isFinite else { return null(key) }
        key_(key)
        bytes.append(contentsOf: "\(value)".utf8)
    }

    public mutating func field(_ key: StaticString, bool value: Bool) {
        key_(key)
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A field whose name is not known in advance (escaped like any string).
    public mutating func field(named name: String, string value: String) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
        Self.appendString(name, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        Self.appendString(value, to: &bytes)
    }

    /// A JSON object of string values, keys sorted (so equal maps give equal bytes).
    public static func object(_ values: [String: String]) -> [UInt8] {
        var json = JSONText(capacity: 16 + values.count * 32)
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            json.field(named: name, string: value)
        }
        return json.finish()
    }

    public mutating func null(_ key: StaticString) {
        key_(key)
        bytes.append(contentsOf: "null".utf8)
    }

    /// Closes the object and returns its bytes.
    public consuming func finish() -> [UInt8] {
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    private mutating func key_(_ key: StaticString) {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: "\":".utf8)
    }

    /// Appends `value` as a JSON string literal with the escapes RFC 8259 requires.
    public static func appendString(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: "\\n".utf8)
            case UInt8(ascii: "\r"): bytes.append(contentsOf: "\\r".utf8)
            case UInt8(ascii: "\t"): bytes.append(contentsOf: "\\t".utf8)
            case 0x00..<0x20, 0x7F:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(hex[Int(byte >> 4)])
                bytes.append(hex[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
