/// A strict single-pass JSON validator (RFC 8259) that also reports where the members of a
/// top-level object start and end.
///
/// The gateway forwards a device's `data` byte for byte: it validates the document, takes the
/// fields it needs, and copies the raw bytes of the rest instead of decoding and re-encoding them.
/// Nesting is limited to ``maxDepth`` so that hostile input cannot exhaust the stack.
public struct JSONScanner {
    /// Deepest nesting of arrays and objects accepted.
    public static let maxDepth = 64

    /// The kind of a JSON value.
    public enum Kind: Sendable, Equatable {
        case object, array, string, number, bool, null
    }

    /// One member of the top-level object.
    public struct Member: Sendable {
        /// The decoded key.
        public var key: String
        public var kind: Kind
        /// Byte offsets of the value in the scanned buffer.
        public var range: Range<Int>
    }

    public struct Error: Swift.Error, Equatable, Sendable {
        public var offset: Int
        public var message: String
    }

    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    private init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Validates `bytes` as one JSON document. Returns the top-level members when it is an object,
    /// `nil` when it is valid JSON of another kind.
    public static func topLevelMembers(of bytes: [UInt8]) throws(Error) -> [Member]? {
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        var members: [Member]? = nil
        if scanner.peek() == UInt8(ascii: "{") {
            members = try scanner.scanObject(collecting: true)
        } else {
            _ = try scanner.scanValue()
        }
        scanner.skipWhitespace()
        guard scanner.index == bytes.count else {
            throw Error(offset: scanner.index, message: "unexpected data after the JSON value")
        }
        return members
    }

    /// Decodes the JSON string literal at `range` (including its quotes).
    public static func decodeString(_ bytes: [UInt8], range: Range<Int>) -> String? {
        var scanner = JSONScanner(bytes)
        scanner.index = range.lowerBound
        return try? scanner.scanString()
    }

    /// The first top-level member named `key` whose value is a string, read from the start of
    /// `bytes` only as far as it takes: what comes after that member (more members, a broken tail,
    /// a cut at a size limit) is never looked at. Names an event in the `rejected` ack of a payload
    /// that is too large or broken further on, so the device can stop re-sending it. Work is
    /// linear in `bytes.count` and nesting is limited as in ``topLevelMembers(of:)``.
    public static func leadingString(named key: String, in bytes: [UInt8]) -> String? {
        var scanner = JSONScanner(bytes)
        return scanner.findLeadingString(named: key)
    }

    private mutating func findLeadingString(named wanted: String) -> String? {
        skipWhitespace()
        guard peek() == UInt8(ascii: "{") else { return nil }
        index += 1
        depth = 1
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\""), let key = try? scanString() else { return nil }
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { return nil }
            index += 1
            skipWhitespace()
            if key == wanted, peek() == UInt8(ascii: "\"") {
                return try? scanString()
            }
            guard (try? scanValue()) != nil else { return nil }
            skipWhitespace()
            guard peek() == UInt8(ascii: ",") else { return nil }
            index += 1
        }
    }

    // MARK: - Scanning

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func fail(_ message: String) -> Error {
        Error(offset: index, message: message)
    }

    @discardableResult
    private mutating func scanValue() throws(Error) -> Kind {
        skipWhitespace()
        guard let byte = peek() else { throw fail("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"):
            _ = try scanObject(collecting: false)
            return .object
        case UInt8(ascii: "["):
            try scanArray()
            return .array
        case UInt8(ascii: "\""):
            try skipString()
            return .string
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try scanNumber()
            return .number
        default:
            throw fail("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Error) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail("unexpected end of input") }
        let matches = literal.withUTF8Buffer { buffer in
            bytes[index..<(index + count)].elementsEqual(buffer)
        }
        guard matches else { throw fail("invalid literal") }
        index += count
    }

    private mutating func enter() throws(Error) {
        depth += 1
        if depth > Self.maxDepth { throw fail("nesting deeper than \(Self.maxDepth)") }
    }

    private mutating func scanObject(collecting: Bool) throws(Error) -> [Member] {
        try enter()
        defer { depth -= 1 }
        index += 1  // {
        var members: [Member] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return members
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key: String
            if collecting {
                key = try scanString()
            } else {
                try skipString()
                key = ""
            }
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let start = index
            let kind = try scanValue()
            if collecting {
                members.append(Member(key: key, kind: kind, range: start..<index))
            }
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "}"):
                index += 1
                return members
            default:
                throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func scanArray() throws(Error) {
        try enter()
        defer { depth -= 1 }
        index += 1  // [
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return
        }
        while true {
            try scanValue()
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","):
                index += 1
            case UInt8(ascii: "]"):
                index += 1
                return
            default:
                throw fail("expected ',' or ']'")
            }
        }
    }

    private mutating func scanNumber() throws(Error) {
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), isDigit(first) else { throw fail("invalid number") }
        if first == UInt8(ascii: "0") {
            index += 1
        } else {
            skipDigits()
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let digit = peek(), isDigit(digit) else { throw fail("invalid number") }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), isDigit(digit) else { throw fail("invalid number") }
            skipDigits()
        }
    }

    private func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func skipDigits() {
        while let byte = peek(), isDigit(byte) { index += 1 }
    }

    /// Validates a string without building it.
    private mutating func skipString() throws(Error) {
        index += 1  // opening quote
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return
            case UInt8(ascii: "\\"):
                _ = try scanEscape()
            case 0x00..<0x20:
                throw fail("control character in string")
            case 0x80...:
                try skipUTF8Sequence()
            default:
                index += 1
            }
        }
        throw fail("unterminated string")
    }

    private mutating func scanString() throws(Error) -> String {
        index += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(scalars)
            case UInt8(ascii: "\\"):
                scalars.append(try scanEscape())
            case 0x00..<0x20:
                throw fail("control character in string")
            case 0x80...:
                let start = index
                try skipUTF8Sequence()
                let decoded = String(decoding: bytes[start..<index], as: UTF8.self)
                scalars.append(contentsOf: decoded.unicodeScalars)
            default:
                scalars.append(Unicode.Scalar(byte))
                index += 1
            }
        }
        throw fail("unterminated string")
    }

    private mutating func scanEscape() throws(Error) -> Unicode.Scalar {
        index += 1  // backslash
        guard let byte = peek() else { throw fail("unterminated escape") }
        index += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"):
            let high = try scanHex4()
            if (0xD800..<0xDC00).contains(high) {
                guard peek() == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u")
                else { throw fail("unpaired surrogate") }
                index += 2
                let low = try scanHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                let value = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                guard let scalar = Unicode.Scalar(value) else { throw fail("invalid escape") }
                return scalar
            }
            guard let scalar = Unicode.Scalar(high) else { throw fail("unpaired surrogate") }
            return scalar
        default:
            throw fail("invalid escape")
        }
    }

    private mutating func scanHex4() throws(Error) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail("invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// Checks one well-formed UTF-8 sequence (no overlongs, no surrogates, at most U+10FFFF).
    private mutating func skipUTF8Sequence() throws(Error) {
        let first = bytes[index]
        let length: Int
        var minimum: UInt32
        var value: UInt32
        switch first {
        case 0xC2...0xDF: length = 2; minimum = 0x80; value = UInt32(first & 0x1F)
        case 0xE0...0xEF: length = 3; minimum = 0x800; value = UInt32(first & 0x0F)
        case 0xF0...0xF4: length = 4; minimum = 0x10000; value = UInt32(first & 0x07)
        default: throw fail("invalid UTF-8")
        }
        guard index + length <= bytes.count else { throw fail("invalid UTF-8") }
        for offset in 1..<length {
            let byte = bytes[index + offset]
            guard byte & 0xC0 == 0x80 else { throw fail("invalid UTF-8") }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        guard value >= minimum, value <= 0x10FFFF, !(0xD800..<0xE000).contains(value) else {
            throw fail("invalid UTF-8")
        }
        index += length
    }
}
