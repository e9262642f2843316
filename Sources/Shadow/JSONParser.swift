import GatewayCore

extension JSONValue {
    /// The deepest nesting of arrays and objects ``parse(_:maxBytes:maxDepth:)`` accepts by default.
    public static let defaultMaxDepth = 32

    /// Parses one JSON document (RFC 8259), strictly and within bounds, for input nobody vouches for.
    ///
    /// Refused, with a ``ShadowError`` naming the reason and the byte offset: more than `maxBytes`
    /// bytes (checked before anything else is read); nesting deeper than `maxDepth` (the parser
    /// stops at the first level too deep, so `[[[[…` of any length costs at most `maxDepth` stack
    /// frames); an object with the same key twice; bytes that are not UTF-8 (overlong forms,
    /// surrogates, beyond U+10FFFF) and `\u` escapes that are not a scalar (unpaired surrogates);
    /// and whatever else is not JSON: `NaN`, `Infinity`, `+1`, `01`, `1.`, `.5`, hex, comments,
    /// trailing commas, a byte-order mark, control characters in strings, more after the value.
    /// Whitespace around the value is allowed. Numbers keep their text (``JSONNumber``).
    public static func parse(_ bytes: [UInt8], maxBytes: Int, maxDepth: Int = defaultMaxDepth) throws(ShadowError) -> JSONValue {
        guard bytes.count <= maxBytes else {
            throw ShadowError(.tooLarge, "\(bytes.count) bytes, more than the \(maxBytes) allowed")
        }
        var parser = JSONParser(bytes: bytes, maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw parser.fail(.syntax, "unexpected data after the JSON value") }
        return value
    }
}

/// The recursive-descent parser behind ``JSONValue/parse(_:maxBytes:maxDepth:)``.
struct JSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0
    var depth = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    func fail(_ code: ShadowError.Code, _ message: String) -> ShadowError {
        ShadowError(code, message, offset: index)
    }

    private func peek() -> UInt8? {
        index < bytes.count ? bytes[index] : nil
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    mutating func parseValue() throws(ShadowError) -> JSONValue {
        guard let byte = peek() else { throw fail(.syntax, "unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return .object(try parseObject())
        case UInt8(ascii: "["): return .array(try parseArray())
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw fail(.syntax, "unexpected character")
        }
    }

    private mutating func expect(_ literal: StaticString) throws(ShadowError) {
        let count = literal.utf8CodeUnitCount
        let matches = index + count <= bytes.count && literal.withUTF8Buffer { bytes[index..<(index + count)].elementsEqual($0) }
        guard matches else { throw fail(.syntax, "invalid literal") }
        index += count
    }

    private mutating func enter() throws(ShadowError) {
        guard depth < maxDepth else { throw fail(.tooDeep, "nested deeper than \(maxDepth) levels") }
        depth += 1
    }

    private mutating func parseObject() throws(ShadowError) -> JSONObject {
        try enter()
        defer { depth -= 1 }
        index += 1  // {
        var object = JSONObject()
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return object
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw fail(.syntax, "expected a string key") }
            let keyOffset = index
            let key = try parseString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw fail(.syntax, "expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            guard object.insertNew(key: key, value: value) else {
                throw ShadowError(.duplicateKey, "the key \(Self.quoted(key)) appears twice in one object", offset: keyOffset)
            }
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return object
            default: throw fail(.syntax, "expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray() throws(ShadowError) -> [JSONValue] {
        try enter()
        defer { depth -= 1 }
        index += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return elements
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return elements
            default: throw fail(.syntax, "expected ',' or ']'")
            }
        }
    }

    private mutating func parseNumber() throws(ShadowError) -> JSONNumber {
        let start = index
        if peek() == UInt8(ascii: "-") { index += 1 }
        guard let first = peek(), Self.isDigit(first) else { throw fail(.syntax, "invalid number") }
        if first == UInt8(ascii: "0") {
            index += 1
            if let next = peek(), Self.isDigit(next) { throw fail(.syntax, "invalid number: leading zero") }
        } else {
            skipDigits()
        }
        if peek() == UInt8(ascii: ".") {
            index += 1
            guard let digit = peek(), Self.isDigit(digit) else { throw fail(.syntax, "invalid number: no digit after '.'") }
            skipDigits()
        }
        if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
            index += 1
            if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { index += 1 }
            guard let digit = peek(), Self.isDigit(digit) else { throw fail(.syntax, "invalid number: no digit in the exponent") }
            skipDigits()
        }
        return JSONNumber(validText: String(decoding: bytes[start..<index], as: UTF8.self))
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    private mutating func skipDigits() {
        while let byte = peek(), Self.isDigit(byte) { index += 1 }
    }

    /// A string literal, decoded; its UTF-8 is checked before it becomes a `String`.
    private mutating func parseString() throws(ShadowError) -> String {
        index += 1  // opening quote
        var utf8: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                let scalar = try parseEscape()
                UTF8.encode(scalar) { utf8.append($0) }
            case 0x00..<0x20:
                throw fail(.syntax, "control character in a string")
            case 0x80...:
                let length = try utf8SequenceLength()
                utf8.append(contentsOf: bytes[index..<(index + length)])
                index += length
            default:
                utf8.append(byte)
                index += 1
            }
        }
        throw fail(.syntax, "unterminated string")
    }

    private mutating func parseEscape() throws(ShadowError) -> Unicode.Scalar {
        index += 1  // backslash
        guard let byte = peek() else { throw fail(.syntax, "unterminated escape") }
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
            let high = try parseHex4()
            if (0xD800..<0xDC00).contains(high) {
                guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                    throw fail(.invalidUTF8, "unpaired surrogate in a \\u escape")
                }
                index += 2
                let low = try parseHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw fail(.invalidUTF8, "unpaired surrogate in a \\u escape") }
                let value = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                guard let scalar = Unicode.Scalar(value) else { throw fail(.invalidUTF8, "invalid \\u escape") }
                return scalar
            }
            guard let scalar = Unicode.Scalar(high) else { throw fail(.invalidUTF8, "unpaired surrogate in a \\u escape") }
            return scalar
        default:
            throw fail(.syntax, "invalid escape")
        }
    }

    private mutating func parseHex4() throws(ShadowError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail(.syntax, "invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail(.syntax, "invalid \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// The length of the well-formed UTF-8 sequence at `index` (no overlong forms, no
    /// surrogates, at most U+10FFFF).
    private func utf8SequenceLength() throws(ShadowError) -> Int {
        let first = bytes[index]
        let length: Int
        let minimum: UInt32
        var value: UInt32
        switch first {
        case 0xC2...0xDF: length = 2; minimum = 0x80; value = UInt32(first & 0x1F)
        case 0xE0...0xEF: length = 3; minimum = 0x800; value = UInt32(first & 0x0F)
        case 0xF0...0xF4: length = 4; minimum = 0x10000; value = UInt32(first & 0x07)
        default: throw fail(.invalidUTF8, "invalid UTF-8")
        }
        guard index + length <= bytes.count else { throw fail(.invalidUTF8, "invalid UTF-8: cut sequence") }
        for offset in 1..<length {
            let byte = bytes[index + offset]
            guard byte & 0xC0 == 0x80 else { throw fail(.invalidUTF8, "invalid UTF-8") }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        guard value >= minimum, value <= 0x10FFFF, !(0xD800..<0xE000).contains(value) else {
            throw fail(.invalidUTF8, "invalid UTF-8")
        }
        return length
    }

    /// A key for an error message: cut at 40 characters, control characters escaped.
    static func quoted(_ key: String) -> String {
        var bytes: [UInt8] = []
        JSONText.appendString(String(String.UnicodeScalarView(key.unicodeScalars.prefix(40))), to: &bytes)
        return String(decoding: bytes, as: UTF8.self) + (key.unicodeScalars.count > 40 ? "…" : "")
    }
}
