import Foundation
import Testing

@testable import Wyoming

@Suite("Wyoming framing")
struct WyomingFramingTests {
    static let events = [
        WyomingEvent(type: "describe"),
        WyomingEvent(type: "transcript", data: ["text": "turn on the kitchen light ✓\nnext line", "language": "en"]),
        WyomingEvent(
            type: "audio-chunk", data: ["rate": 16000, "width": 2, "channels": 1, "timestamp": nil],
            payload: Array(0..<255) + [10, 10, 123]
        ),
        WyomingEvent(type: "intent", data: ["name": "HassTurnOn", "entities": [["name": "name", "value": "kitchen"]], "confidence": 0.5, "ok": true]),
    ]

    static func decodeAll(_ bytes: [UInt8], slice: Int, limits: WyomingLimits = WyomingLimits()) throws -> [WyomingEvent] {
        var decoder = WyomingDecoder(limits: limits)
        var events: [WyomingEvent] = []
        var index = 0
        while index < bytes.count {
            decoder.append(bytes[index..<min(bytes.count, index + slice)])
            index += slice
            while let event = try decoder.next() { events.append(event) }
        }
        #expect(!decoder.isInsideEvent)
        return events
    }

    @Test("events survive encoding and decoding, in any slicing of the bytes", arguments: [1, 2, 7, 100, 1 << 20])
    func roundTrip(slice: Int) throws {
        let bytes = try Self.events.flatMap { try $0.encoded() }
        #expect(try Self.decodeAll(bytes, slice: slice) == Self.events)
    }

    @Test("the header line is the reference package's: type, version, data_length, payload_length and a newline")
    func headerLine() throws {
        let bytes = try WyomingEvent(type: "audio-chunk", data: ["rate": 16000], payload: [1, 2, 3]).encoded()
        let newline = try #require(bytes.firstIndex(of: 10))
        let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[..<newline])) as? [String: Any])
        #expect(header["type"] as? String == "audio-chunk")
        #expect(header["version"] as? String == "1.10.2")
        #expect(header["data_length"] as? Int == 14)  // {"rate":16000}
        #expect(header["payload_length"] as? Int == 3)
        #expect(Array(bytes[(newline + 1)...]) == Array(#"{"rate":16000}"#.utf8) + [1, 2, 3])
        let bare = try WyomingEvent(type: "describe").encoded()
        #expect(String(decoding: bare, as: UTF8.self) == #"{"type":"describe","version":"1.10.2"}"# + "\n")
    }

    @Test("bytes as the reference package writes them decode, data bytes merged over the header's data")
    func referenceBytes() throws {
        let data = #"{"text": "hello", "language": "de"}"#
        let line = #"{"type": "transcript", "data": {"language": "en", "extra": 1}, "data_length": \#(data.utf8.count), "version": "1.10.2"}"#
        let events = try Self.decodeAll(Array((line + "\n" + data).utf8), slice: 5)
        #expect(events == [WyomingEvent(type: "transcript", data: ["text": "hello", "language": "de", "extra": 1])])
    }

    static let limits = WyomingLimits(maxHeaderBytes: 256, maxDataBytes: 1000, maxPayloadBytes: 2000)

    static let malformed: [(String, [UInt8], WyomingError.Code)] = [
        ("a header line over maxHeaderBytes, no newline yet", Array(repeating: UInt8(ascii: "a"), count: 300), .headerTooLong),
        ("a header line over maxHeaderBytes with its newline", Array(("{\"type\":\"x\",\"pad\":\"" + String(repeating: "p", count: 300) + "\"}\n").utf8), .headerTooLong),
        ("a header that is not JSON", Array("{\"type\": \"info\", \"data_length\": \n".utf8), .invalidHeader),
        ("an empty header line", [10], .invalidHeader),
        ("a header that is a JSON array", Array("[\"type\"]\n".utf8), .invalidHeader),
        ("a header without type", Array("{\"data\": {}}\n".utf8), .invalidHeader),
        ("a header whose type is a number", Array("{\"type\": 5}\n".utf8), .invalidHeader),
        ("a header whose data is a list", Array("{\"type\": \"x\", \"data\": [1]}\n".utf8), .invalidData),
        ("data bytes that are a JSON array", Array("{\"type\": \"x\", \"data_length\": 3}\n[1]".utf8), .invalidData),
        ("data bytes that are not JSON", Array("{\"type\": \"x\", \"data_length\": 3}\n{{{".utf8), .invalidData),
        ("a negative data_length", Array("{\"type\": \"x\", \"data_length\": -1}\n".utf8), .invalidLength),
        ("a negative payload_length", Array("{\"type\": \"x\", \"payload_length\": -5}\n".utf8), .invalidLength),
        ("a fractional data_length", Array("{\"type\": \"x\", \"data_length\": 1.5}\n".utf8), .invalidLength),
        ("a data_length as a string", Array("{\"type\": \"x\", \"data_length\": \"5\"}\n".utf8), .invalidLength),
        ("a payload_length that is true", Array("{\"type\": \"x\", \"payload_length\": true}\n".utf8), .invalidLength),
        ("a data_length over maxDataBytes", Array("{\"type\": \"x\", \"data_length\": 1001}\n".utf8), .invalidLength),
        ("a payload_length over maxPayloadBytes", Array("{\"type\": \"x\", \"payload_length\": 2001}\n".utf8), .invalidLength),
        ("a data_length of 2^40", Array("{\"type\": \"x\", \"data_length\": 1099511627776}\n".utf8), .invalidLength),
        ("a payload_length beyond Int64", Array("{\"type\": \"x\", \"payload_length\": 1e30}\n".utf8), .invalidLength),
    ]

    @Test("every malformed input is a typed error, before its announced bytes arrive", arguments: malformed.indices)
    func malformedInput(index: Int) throws {
        let (what, bytes, code) = Self.malformed[index]
        var decoder = WyomingDecoder(limits: Self.limits)
        decoder.append(bytes)
        let error = try #require(throws: WyomingError.self, "\(what)") { _ = try decoder.next() }
        #expect(error.code == code, "\(what): \(error)")
        #expect(!error.message.isEmpty)
        // Out of step for good: more bytes do not revive it.
        decoder.append(try WyomingEvent(type: "describe").encoded())
        #expect(throws: WyomingError.self) { _ = try decoder.next() }
    }

    @Test("exactly at the limits is accepted")
    func atTheLimits() throws {
        let payload = [UInt8](repeating: 7, count: Self.limits.maxPayloadBytes)
        let event = WyomingEvent(type: "audio-chunk", payload: payload)
        #expect(try Self.decodeAll(try event.encoded(), slice: 333, limits: Self.limits) == [event])
    }

    @Test("arbitrary bytes end in events or a typed error, and what is held stays within the limits")
    func arbitraryBytes() throws {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("{}[]\":,0123456789-.e type data_length payload_length\n".utf8)
        for _ in 0..<500 {
            var decoder = WyomingDecoder(limits: Self.limits)
            let valid = try Self.events.randomElement(using: &generator)!.encoded()
            for _ in 0..<20 {
                var chunk: [UInt8] = Int.random(in: 0..<4, using: &generator) == 0 ? valid : []
                for _ in 0..<Int.random(in: 0..<200, using: &generator) {
                    chunk.append(Bool.random(using: &generator) ? alphabet.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator))
                }
                decoder.append(chunk)
                do {
                    while try decoder.next() != nil {}
                } catch {
                    break
                }
                let bound = Self.limits.maxHeaderBytes + Self.limits.maxDataBytes + Self.limits.maxPayloadBytes + chunk.count
                #expect(decoder.bufferedBytes <= bound)
            }
        }
    }
}
