/// A device identifier as CONTRACTS.md §1 defines it: 1–64 characters of `[A-Za-z0-9_-]`.
///
/// A `DeviceID` value is always valid, so it can be put into topics, log metadata and SQL without
/// escaping. Anything else (wildcards, `/`, empty, too long) is refused by ``init(_:)``.
public struct DeviceID: Hashable, Sendable, CustomStringConvertible {
    /// The longest identifier a device may use.
    public static let maxLength = 64

    /// The identifier as text.
    public let rawValue: String

    /// Validates `text` as a device identifier; `nil` when it is not one.
    public init?(_ text: some StringProtocol) {
        guard Self.isValid(text.utf8) else { return nil }
        self.rawValue = String(text)
    }

    /// Validates raw bytes (as found in an MQTT topic level) as a device identifier.
    public init?(bytes: some Collection<UInt8>) {
        guard Self.isValid(bytes) else { return nil }
        self.rawValue = String(decoding: bytes, as: UTF8.self)
    }

    public var description: String { rawValue }

    static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        let count = bytes.count
        guard count >= 1, count <= maxLength else { return false }
        return bytes.allSatisfy(isAllowed)
    }

    @inline(__always)
    static func isAllowed(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}

extension DeviceID {
    /// Renders untrusted text (an invalid id) safely for a log line: printable ASCII is kept,
    /// everything else becomes `\xNN`, and the result is cut at 80 bytes.
    public static func escapedForLog(_ bytes: some Collection<UInt8>) -> String {
        var out = ""
        for (index, byte) in bytes.enumerated() {
            if index >= 80 {
                out += "…"
                break
            }
            if byte >= 0x20, byte < 0x7F, byte != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
