import Commands
import Testing

@Suite struct DeviceCommandResultParsingTests {
    static let limits = CommandLimits(maxPayloadBytes: 1024, maxTtlSeconds: 60)

    static func parse(_ text: String) -> Result<DeviceCommandResult, DeviceCommandResult.Rejection> {
        DeviceCommandResult.parse(payload: Array(text.utf8), limits: limits)
    }

    @Test(arguments: DeviceCommandResult.Status.allCases)
    func eachStatusIsReadWithItsRawResultAndMessage(status: DeviceCommandResult.Status) throws {
        let result = #"{"led": "on",  "ms":12}"#
        let parsed = try Self.parse(#"{"commandId":"c-1","status":"\#(status.rawValue)","result":\#(result),"message":"done\n"}"#).get()
        #expect(parsed.commandID == "c-1")
        #expect(parsed.status == status)
        #expect(parsed.result == Array(result.utf8))
        #expect(parsed.message == "done\n")
    }

    @Test func resultAndMessageAreOptional() throws {
        let parsed = try Self.parse(#"{"commandId":"c","status":"accepted","result":null,"message":null}"#).get()
        #expect(parsed.result == nil)
        #expect(parsed.message == nil)
        #expect(parsed.status.commandStatus == .delivered)
    }

    static let malformed: [(payload: String, words: String)] = [
        (#"{"commandId":"c","status":"done"}"#, "status must be one of"),
        (#"{"commandId":"c","status":"ACCEPTED"}"#, "status must be one of"),
        (#"{"commandId":"c"}"#, "status must be one of"),
        (#"{"commandId":"c","status":1}"#, "status must be one of"),
        (#"{"status":"accepted"}"#, "commandId must be a string"),
        (#"{"commandId":"a\u0000","status":"accepted"}"#, "commandId must be a string"),
        (#"{"commandId":["c"],"status":"accepted"}"#, "commandId must be a string"),
        (#"{"commandId":"c","status":"failed","message":42}"#, "message must be a string"),
        (#"{"commandId":"c","status":"failed","message":"a\u0007"}"#, "message must not hold control characters"),
        (#"{"commandId":"c","status":"failed","status":"succeeded"}"#, #"key "status" given twice"#),
        (#"["c","accepted"]"#, "not a JSON object"),
        (#"{"commandId":"c","status":"accepted""#, "not valid JSON"),
    ]

    @Test(arguments: malformed)
    func aMalformedResultIsRefusedWithItsReason(payload: String, words: String) {
        guard case .failure(let rejection) = Self.parse(payload) else {
            Issue.record("accepted: \(payload)")
            return
        }
        #expect(rejection.detail.contains(words), "\(rejection.detail)")
    }

    @Test func anOversizedResultIsRefusedAndStillNamed() {
        let text = #"{"commandId":"c-7","status":"succeeded","result":""# + String(repeating: "x", count: 1 << 20) + #""}"#
        guard case .failure(let rejection) = Self.parse(text) else {
            Issue.record("accepted 1 MB")
            return
        }
        #expect(rejection.commandID == "c-7")
        #expect(rejection.detail.contains("over commands.maxPayloadBytes (1024)"))
    }
}
