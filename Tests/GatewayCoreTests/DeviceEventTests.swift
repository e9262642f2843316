import Foundation
import GatewayCore
import Testing

@Suite struct DeviceEventTests {
    let device = DeviceID("dev-1")!

    func parse(_ text: String, limit: Int = 65536) -> Result<DeviceEvent, DeviceEvent.Rejection> {
        DeviceEvent.parse(device: device, payload: Array(text.utf8), maxPayloadBytes: limit)
    }

    @Test func acceptsContractEventAndKeepsDataBytesVerbatim() throws {
        let event = try parse(#"{"eventId":"e-1","type":"door.open","timestamp":1700000000123,"data":{"a": [1, 2.50, "x"]}}"#).get()
        #expect(event.eventID == "e-1")
        #expect(event.type == "door.open")
        #expect(event.timestamp == 1_700_000_000_123)
        #expect(String(decoding: event.data, as: UTF8.self) == #"{"a": [1, 2.50, "x"]}"#)
    }

    @Test func missingTimestampAndDataBecomeNull() throws {
        let event = try parse(#"{"eventId":"e","type":"t"}"#).get()
        #expect(event.timestamp == nil)
        #expect(event.data == Array("null".utf8))
    }

    @Test func decodesEscapesInEventID() throws {
        let event = try parse(#"{"eventId":"a\u00e9\ud83d\ude00","type":"t"}"#).get()
        #expect(event.eventID == "aé😀")
    }

    @Test(arguments: [
        ("{bad", RejectReason.invalidJSON),
        (#"{"eventId":"e","type":"t"} x"#, .invalidJSON),
        ("[1,2]", .notAnObject),
        (#"{"type":"t"}"#, .invalidEventID),
        (#"{"eventId":5,"type":"t"}"#, .invalidEventID),
        (#"{"eventId":"","type":"t"}"#, .invalidEventID),
        (#"{"eventId":"a\nb","type":"t"}"#, .invalidEventID),
        (#"{"eventId":"e"}"#, .invalidType),
        (#"{"eventId":"e","type":""}"#, .invalidType),
        (#"{"eventId":"e","type":"t","timestamp":"now"}"#, .invalidTimestamp),
        (#"{"eventId":"e","type":"t","timestamp":-1}"#, .invalidTimestamp),
        (#"{"eventId":"e","type":"t","timestamp":1.5}"#, .invalidTimestamp),
    ])
    func rejectsWithReason(_ payload: String, _ reason: RejectReason) {
        guard case .failure(let rejection) = parse(payload) else {
            Issue.record("accepted \(payload)")
            return
        }
        #expect(rejection.reason == reason)
    }

    @Test func rejectionNamesEventIDWhenItWasReadable() {
        guard case .failure(let rejection) = parse(#"{"eventId":"e9","type":7}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.eventID == "e9")
    }

    @Test(arguments: [
        (#"{"eventId": "e-7", "type": "#, "e-7"),
        (#"{"type":"t","data":{"eventId":"inner","x":[1,{"eventId":"deep"}]},"eventId":"outer","x":tru"#, "outer"),
        (#"  {"eventId":"a\u00e9", "type": 5, "data": }"#, "aé"),
        (#"{"eventId":"e","type":"t"} trailing"#, "e"),
    ])
    func aBrokenPayloadIsRejectedWithTheEventIDReadFromItsStart(_ payload: String, _ expected: String) {
        guard case .failure(let rejection) = parse(payload) else {
            Issue.record("accepted \(payload)")
            return
        }
        #expect(rejection.reason == .invalidJSON)
        #expect(rejection.eventID == expected)
    }

    @Test(arguments: [
        #"{"type": t, "eventId": "after-the-break"}"#,
        #"{"eventId": 5, "x": }"#,
        #"{"eventId": "", "x": }"#,
        #"{"eventId": "a\nb", "x": }"#,
        #"[{"eventId": "in-an-array"}, "#,
        #"{"data": {"eventId": "only-nested"}, "#,
    ])
    func aBrokenPayloadWithoutAReadableValidEventIDIsRejectedWithNone(_ payload: String) {
        guard case .failure(let rejection) = parse(payload) else {
            Issue.record("accepted \(payload)")
            return
        }
        #expect(rejection.eventID == nil, "\(payload)")
    }

    @Test func anOversizedPayloadNamesTheEventFromWithinTheLimitOnly() {
        let pad = String(repeating: "x", count: 200)
        guard case .failure(let first) = parse(#"{"eventId":"big","type":"t","data":"\#(pad)"}"#, limit: 64),
            case .failure(let late) = parse(#"{"type":"t","data":"\#(pad)","eventId":"late"}"#, limit: 64)
        else {
            Issue.record("accepted")
            return
        }
        #expect(first.reason == .payloadTooLarge && first.eventID == "big")
        #expect(late.reason == .payloadTooLarge && late.eventID == nil)
    }

    @Test func eventIDLongerThan64CharactersIsRejected() {
        let long = String(repeating: "e", count: 65)
        guard case .failure(let rejection) = parse(#"{"eventId":"\#(long)","type":"t"}"#) else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.reason == .invalidEventID)
    }

    @Test func oversizedPayloadIsRejectedBeforeParsing() {
        guard case .failure(let rejection) = parse(#"{"eventId":"e","type":"t","data":"0123456789"}"#, limit: 16) else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.reason == .payloadTooLarge)
    }

    @Test func deepNestingIsRejectedNotCrashing() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        guard case .failure(let rejection) = parse(#"{"eventId":"e","type":"t","data":\#(deep)}"#, limit: 1 << 20) else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.reason == .invalidJSON)
    }

    @Test func invalidUTF8IsRejected() {
        var bytes = Array(#"{"eventId":"e","type":"t","data":""#.utf8)
        bytes += [0xC3, 0x28]
        bytes += Array(#""}"#.utf8)
        guard case .failure(let rejection) = DeviceEvent.parse(device: device, payload: bytes, maxPayloadBytes: 1000) else {
            Issue.record("accepted")
            return
        }
        #expect(rejection.reason == .invalidJSON)
    }

    @Test func scannerAgreesWithFoundationOnValidDocuments() throws {
        let documents = [
            #"{"a":1}"#, #"[]"#, #"{"a":{"b":[true,false,null,-0.5e+3,"\"\\\/\b\f\n\r\t"]}}"#, #""x""#, "0", "  {\n}  ",
        ]
        for document in documents {
            let bytes = Array(document.utf8)
            let members = try JSONScanner.topLevelMembers(of: bytes)
            let foundation = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
            // An object's members (by key) where Foundation sees an object; nil for any other kind.
            #expect(members.map { Set($0.map(\.key)) } == (foundation as? [String: Any]).map { Set($0.keys) }, "\(document)")
        }
    }
}

@Suite struct EncodingTests {
    @Test func ackPayloadMatchesContract() throws {
        let ack = DeviceAck(device: DeviceID("d")!, eventID: "e\"1", status: .rejected, reason: .storeFull)
        let object = try JSONSerialization.jsonObject(with: Data(ack.payload)) as? [String: Any]
        #expect(object?["eventId"] as? String == "e\"1")
        #expect(object?["status"] as? String == "rejected")
        #expect(object?["reason"] as? String == "store full")
        let stored = DeviceAck(device: DeviceID("d")!, eventID: "e", status: .stored)
        #expect(String(decoding: stored.payload, as: UTF8.self) == #"{"eventId":"e","status":"stored"}"#)
    }

    @Test func envelopeHasEveryContractField() throws {
        let event = DeviceEvent(device: DeviceID("d1")!, eventID: "e1", type: "t", timestamp: 5, data: Array(#"{"x":[1]}"#.utf8))
        let bytes = UpstreamEnvelope.encode(event, hubID: "hub", receivedAt: 9)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(Set(object.keys) == ["eventId", "hubId", "deviceId", "type", "key", "timestamp", "receivedAt", "data"])
        #expect(object["key"] as? String == "d1")
        #expect((object["data"] as? [String: Any])?["x"] as? [Int] == [1])
    }

    @Test func topicTemplateRendersAndValidates() {
        let template = UpstreamTopicTemplate("hubs/{hubId}/events/{deviceId}")
        #expect(template.render(hubID: "h", deviceID: "d") == "hubs/h/events/d")
        #expect(template.validate() == nil)
        #expect(UpstreamTopicTemplate("a/{nope}").validate() != nil)
        #expect(UpstreamTopicTemplate("a/#").validate() != nil)
        #expect(UpstreamTopicTemplate("").validate() != nil)
    }
}
