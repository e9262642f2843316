import Shadow
import Testing

/// The parser against what a hostile device or cloud client can send: every refusal typed, no
/// crash, work bounded; and what it accepts survives a round trip unchanged.
@Suite struct JSONParserTests {
    static func parse(_ bytes: [UInt8], maxBytes: Int = 1 << 22) -> Result<JSONValue, ShadowError> {
        Result { () throws(ShadowError) -> JSONValue in try JSONValue.parse(bytes, maxBytes: maxBytes) }
    }

    static func code(_ bytes: [UInt8], maxBytes: Int = 1 << 22) -> ShadowError.Code? {
        if case .failure(let error) = parse(bytes, maxBytes: maxBytes) { return error.code }
        return nil
    }

    @Test func parsesEveryKindOfValue() throws {
        let value = try json(#" {"s": "a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "n": -12.5e-3, "t": true, "f": false, "z": null, "a": [1, [], {}]} "#)
        guard case .object(let object) = value else { throw TestFailure("not an object") }
        #expect(object.keys == ["s", "n", "t", "f", "z", "a"])
        #expect(object["s"] == .string("a\"\\/\u{08}\u{0C}\n\r\té😀"))
        #expect(object["n"] == .number(try #require(try json("-12.5e-3").number)))
        #expect(object["t"] == true && object["f"] == false && object["z"] == .null)
        #expect(object["a"] == JSONValue.array([1, [], .object(JSONObject())]))
    }

    @Test func nestingOneHundredThousandDeepIsRefusedAtTheLimitWithoutRecursingFurther() {
        let deep = Array(repeating: UInt8(ascii: "["), count: 100_000)
        #expect(Self.code(deep) == .tooDeep)
        let objects = Array(String(repeating: #"{"a":"#, count: 100_000).utf8)
        #expect(Self.code(objects) == .tooDeep)
        if case .failure(let error) = Self.parse(deep) {
            #expect(error.offset == JSONValue.defaultMaxDepth, "stops at the first level too deep")
        }
    }

    @Test func nestingUpToTheLimitIsAcceptedAndOneMoreIsNot() throws {
        let limit = JSONValue.defaultMaxDepth
        let atLimit = String(repeating: "[", count: limit) + String(repeating: "]", count: limit)
        #expect(try json(atLimit).depth == limit)
        let over = String(repeating: "[", count: limit + 1) + String(repeating: "]", count: limit + 1)
        #expect(Self.code(Array(over.utf8)) == .tooDeep)
    }

    @Test func aMegabyteOverTheCallersLimitIsRefusedBeforeParsing() {
        // Not even JSON: the size is checked first.
        let megabyte = Array(repeating: UInt8(ascii: "x"), count: 1 << 20)
        #expect(Self.code(megabyte, maxBytes: 8192) == .tooLarge)
        #expect(Self.code(Array(#"{"a":1}"#.utf8), maxBytes: 6) == .tooLarge)
        #expect(Self.code(Array(#"{"a":1}"#.utf8), maxBytes: 7) == nil)
    }

    @Test func aMegabyteOfJSONWithinTheLimitParses() throws {
        let element = #"{"k":"0123456789abcdef","n":18446744073709551616},"#
        let body = String(repeating: element, count: (1 << 20) / element.utf8.count)
        let bytes = Array(("[" + body.dropLast() + "]").utf8)
        let value = try JSONValue.parse(bytes, maxBytes: 1 << 21)
        guard case .array(let elements) = value else { throw TestFailure("not an array") }
        #expect(elements.count == (1 << 20) / element.utf8.count)
        #expect(value.encoded() == bytes)
    }

    @Test(arguments: [
        #"{"a":1,"a":2}"#, #"{"a":1,"b":{"c":1,"c":1}}"#, #"[{"x":null,"x":null}]"#, #"{"\u0061":1,"a":2}"#,
    ])
    func duplicateKeysAreRefused(_ input: String) {
        #expect(Self.code(Array(input.utf8)) == .duplicateKey)
    }

    @Test func keysAreComparedByteForByteWithoutUnicodeNormalization() throws {
        // "é" precomposed and "e" + combining acute: equal as Swift strings, two keys in JSON.
        let value = try json("{\"\u{E9}\":1,\"e\u{301}\":2}")
        guard case .object(let object) = value else { throw TestFailure("not an object") }
        #expect(object.count == 2)
        #expect(object["\u{E9}"] == 1)
        #expect(object["e\u{301}"] == 2)
    }

    @Test(arguments: [
        [0x22, 0xC3, 0x28, 0x22],  // a lead byte without its continuation
        [0x22, 0xC0, 0xAF, 0x22],  // overlong "/"
        [0x22, 0xE0, 0x80, 0xAF, 0x22],  // overlong, three bytes
        [0x22, 0xED, 0xA0, 0x80, 0x22],  // a UTF-16 surrogate encoded in UTF-8
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // beyond U+10FFFF
        [0x22, 0xF5, 0x80, 0x80, 0x80, 0x22],  // not a lead byte
        [0x22, 0xFF, 0x22],
        [0x22, 0x80, 0x22],  // a lone continuation byte
        [0x22, 0xE2, 0x82],  // cut at the end of input
        Array(#""\ud800""#.utf8),  // an unpaired surrogate escape
        Array(#""\udc00\ud800""#.utf8),  // reversed pair
        Array(#""\ud800\u0041""#.utf8),  // high surrogate, then not a low one
    ] as [[UInt8]])
    func invalidUTF8IsRefused(_ input: [UInt8]) {
        #expect(Self.code(input) == .invalidUTF8)
    }

    @Test(arguments: [
        "", " ", "NaN", "Infinity", "-Infinity", "+1", "01", "-01", "1.", ".5", "0x10", "1e", "1e+", "-", "--1", "1.5.5",
        "tru", "nul", "True", "None", "undefined", "[1,]", #"{"a":1,}"#, "[1 2]", #"{"a" 1}"#, #"{a:1}"#, "'a'",
        "// c\n1", "/* c */1", "\u{FEFF}{}", #""a" "b""#, "{} {}", "[", "{", #"{"a":"#, #""unterminated"#, "\"tab\there\"",
        #""\x41""#, #""\u12""#, #""\u12G4""#, "[1]]", "\u{0}",
    ])
    func whatIsNotJSONIsASyntaxError(_ input: String) {
        #expect(Self.code(Array(input.utf8)) == .syntax, "\(input)")
    }

    @Test func numbersKeepTheirTextHoweverLargeOrPrecise() throws {
        let input = #"{"id":18446744073709551616123,"d":0.1000000000000000055511151231257827,"e":1E400,"n":-0.0,"m":-9223372036854775809,"s":1e-400}"#
        let value = try json(input)
        #expect(text(value.encoded()) == input)
        guard case .object(let object) = value, case .number(let id)? = object["id"] else { throw TestFailure("no id") }
        #expect(id.text == "18446744073709551616123")
        #expect(id.int64 == nil)
    }

    @Test func encodingIsCompactAndParsesBackToTheSameValue() throws {
        let value = try json("{ \"b\" : [ 1 , 2.50 , \"x\\u0001\\u007f\" ] , \"a\" : { } }")
        let encoded = value.encoded()
        #expect(text(encoded) == #"{"b":[1,2.50,"x\u0001\u007f"],"a":{}}"#)
        #expect(try JSONValue.parse(encoded, maxBytes: 1000) == value)
        #expect(try JSONValue.parse(encoded, maxBytes: 1000).encoded() == encoded)
    }

    /// Mutations of a valid document (bytes flipped, cut, repeated): the parser never crashes, and
    /// whatever it accepts encodes to bytes that parse back to the same value and encode the same.
    @Test func mutatedInputNeverCrashesAndWhatParsesRoundTrips() throws {
        let seed = Array(#"{"desired":{"led":"on","level":-1.5e3,"list":[true,false,null,"\u00e9\n"],"cfg":{"a":{"b":[{}]}}},"version":7,"clientToken":"ab"}"#.utf8)
        let alphabet = Array(#"{}[]:,"\-+.0123456789eEtrufalsn "#.utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xC3, 0xA9, 0xED, 0xF4, 0xFF]
        var random = SplitMix(seed: 0x5EED)
        var parsed = 0
        for _ in 0..<5000 {
            var bytes = seed
            for _ in 0..<(1 + random.next(4)) {
                let position = random.next(bytes.count)
                switch random.next(4) {
                case 0: bytes[position] = alphabet[random.next(alphabet.count)]
                case 1: bytes.remove(at: position)
                case 2: bytes.insert(alphabet[random.next(alphabet.count)], at: position)
                default: bytes = Array(bytes[..<position])
                }
                if bytes.isEmpty { break }
            }
            guard case .success(let value) = Self.parse(bytes) else { continue }
            parsed += 1
            let encoded = value.encoded()
            let again = try JSONValue.parse(encoded, maxBytes: 1 << 22)
            #expect(again == value, "\(text(bytes))")
            #expect(again.encoded() == encoded, "\(text(bytes))")
        }
        #expect(parsed > 100, "the mutations keep some inputs valid (\(parsed))")
    }
}

/// A small deterministic generator (SplitMix64), so a failure reproduces.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next(_ bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(max(bound, 1)))
    }
}

extension JSONValue {
    var number: JSONNumber? {
        if case .number(let number) = self { return number }
        return nil
    }
}
