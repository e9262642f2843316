/// A JSON number kept as the text it arrived as (RFC 8259 grammar, checked by the parser), so
/// integers beyond 2^53 (64-bit ids) and decimals (`0.1`) survive unchanged: the shadow never turns
/// a number into a `Double`.
///
/// Two numbers are equal when they denote the same decimal value, compared exactly: `1`, `1.0`,
/// `10e-1` and `0.1E1` are equal; `-0` equals `0`; `9007199254740993` and `9007199254740992`
/// differ (as doubles they would not). A number whose exponent does not fit in 15 digits
/// (`1e1000000000000000000`) is compared by its text instead.
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    /// The number's text, as received.
    public let text: String

    /// A number from text the caller knows is valid JSON number syntax (the parser, or an integer).
    init(validText text: String) {
        self.text = text
    }

    public init(_ value: Int64) {
        text = String(value)
    }

    public var description: String { text }

    /// The value as an `Int64` when the text is a plain integer (`-?[0-9]+`, no fraction or
    /// exponent) within range; nil otherwise.
    public var int64: Int64? {
        Int64(text)
    }

    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if lhs.text == rhs.text { return true }
        guard let left = Decimal(lhs.text), let right = Decimal(rhs.text) else { return false }
        return left == right
    }

    /// The exact value of a JSON number: sign, significant digits without leading or trailing
    /// zeros, and the power of ten of the last digit. Zero has no digits and no sign.
    private struct Decimal: Equatable {
        var negative: Bool
        var digits: [UInt8]
        var exponent: Int64

        /// Nil when the exponent is too long to add to safely; the caller compares texts then.
        init?(_ text: String) {
            let bytes = Array(text.utf8)
            var index = 0
            negative = bytes.first == UInt8(ascii: "-")
            if negative { index += 1 }
            var digits: [UInt8] = []
            var fractionDigits: Int64 = 0
            while index < bytes.count, Self.isDigit(bytes[index]) {
                digits.append(bytes[index])
                index += 1
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                while index < bytes.count, Self.isDigit(bytes[index]) {
                    digits.append(bytes[index])
                    fractionDigits += 1
                    index += 1
                }
            }
            var exponent: Int64 = 0
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                var exponentNegative = false
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    exponentNegative = bytes[index] == UInt8(ascii: "-")
                    index += 1
                }
                while index < bytes.count, bytes[index] == UInt8(ascii: "0") { index += 1 }
                guard bytes.count - index <= 15 else { return nil }
                while index < bytes.count, Self.isDigit(bytes[index]) {
                    exponent = exponent * 10 + Int64(bytes[index] - UInt8(ascii: "0"))
                    index += 1
                }
                if exponentNegative { exponent = -exponent }
            }
            exponent -= fractionDigits
            let first = digits.firstIndex { $0 != UInt8(ascii: "0") }
            guard let first else {
                self.negative = false
                self.digits = []
                self.exponent = 0
                return
            }
            var last = digits.count - 1
            while digits[last] == UInt8(ascii: "0") {
                last -= 1
                exponent += 1
            }
            self.digits = Array(digits[first...last])
            self.exponent = exponent
        }

        private static func isDigit(_ byte: UInt8) -> Bool {
            byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
        }
    }
}
