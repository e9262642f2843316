import Shadow
import Testing

@Suite struct JSONNumberTests {
    static func number(_ text: String) throws -> JSONNumber {
        guard case .number(let number) = try json(text) else { throw TestFailure("not a number: \(text)") }
        return number
    }

    @Test(arguments: [
        ("1", "1.0"), ("1", "1e0"), ("10e-1", "1"), ("0.1E1", "1"), ("-0", "0"), ("0", "0.000e5"), ("100", "1e2"),
        ("1.5e3", "1500"), ("-2.50", "-25E-1"), ("123456789012345678901234567890", "1.2345678901234567890123456789e29"),
        ("1e1000000000000000000", "1e1000000000000000000"),
    ])
    func equalValuesWithOtherTextsAreEqual(_ pair: (String, String)) throws {
        #expect(try Self.number(pair.0) == Self.number(pair.1))
    }

    @Test(arguments: [
        ("9007199254740993", "9007199254740992"), ("1", "-1"), ("0.1", "0.10000000000000001"), ("18446744073709551615", "18446744073709551616"),
        ("1e1000000000000000000", "1e1000000000000000001"), ("1e100", "1e101"), ("0", "1e-400"),
    ])
    func differentValuesDiffer(_ pair: (String, String)) throws {
        #expect(try Self.number(pair.0) != Self.number(pair.1))
    }

    @Test func aPlainIntegerInRangeReadsAsInt64() throws {
        #expect(try Self.number("9223372036854775807").int64 == .max)
        #expect(try Self.number("-9223372036854775808").int64 == .min)
        #expect(try Self.number("9223372036854775808").int64 == nil)
        #expect(try Self.number("1.0").int64 == nil)
        #expect(try Self.number("1e2").int64 == nil)
    }
}
