import Commands
import GatewayCore
import Testing

@Suite struct CloudCommandParsingTests {
    static let device = DeviceID("dev-1")!
    static let now: Int64 = 1_700_000_000_000
    static let limits = CommandLimits(maxPayloadBytes: 16384, maxTtlSeconds: 86400)

    static func parse(_ text: String, limits: CommandLimits = limits) -> Result<CloudCommand, CommandRejection> {
        CloudCommand.parse(device: device, payload: Array(text.utf8), nowMs: now, limits: limits)
    }

    static func rejection(_ text: String, limits: CommandLimits = limits) -> CommandRejection? {
        if case .failure(let rejection) = parse(text, limits: limits) { return rejection }
        return nil
    }

    @Test func aValidCommandKeepsItsParamsByteForByteAndTurnsTtlIntoAnAbsoluteExpiry() throws {
        let params = #"{"times": 3,  "colour":"r\u00e9d", "x":[1, 2.50e0, null]}"#
        let command = try Self.parse(#"{"commandId":"c-1","name":"blink","params":\#(params),"ttlSeconds":60,"extra":{"ignored":true}}"#).get()
        #expect(command.device == Self.device)
        #expect(command.commandID == "c-1")
        #expect(command.name == "blink")
        #expect(command.params == Array(params.utf8), "the cloud's bytes, not a re-encoding")
        #expect(command.expiresAt == Self.now + 60_000)
        #expect(command.receivedAt == Self.now)
    }

    @Test func withBothExpiresAtAndTtlTheEarlierCounts() throws {
        let byTTL = try Self.parse(#"{"commandId":"c","name":"n","expiresAt":\#(Self.now + 90_000),"ttlSeconds":30}"#).get()
        #expect(byTTL.expiresAt == Self.now + 30_000)
        let byDate = try Self.parse(#"{"commandId":"c","name":"n","expiresAt":\#(Self.now + 10_000),"ttlSeconds":30}"#).get()
        #expect(byDate.expiresAt == Self.now + 10_000)
    }

    @Test func absentOrNullOptionalMembersMeanNoParamsAndNoExpiry() throws {
        for text in [#"{"commandId":"c","name":"n"}"#, #"{"commandId":"c","name":"n","params":null,"expiresAt":null,"ttlSeconds":null}"#] {
            let command = try Self.parse(text).get()
            #expect(command.params == nil)
            #expect(command.expiresAt == nil)
        }
        // params may be any JSON value, not only an object.
        #expect(try Self.parse(#"{"commandId":"c","name":"n","params":"on"}"#).get().params == Array(#""on""#.utf8))
        #expect(try Self.parse(#"{"commandId":"c","name":"n","params":[]}"#).get().params == Array("[]".utf8))
    }

    @Test func commandIdsAreLiberalExceptForControlCharacters() throws {
        // 64 characters, some of them outside ASCII, a slash and spaces: all fine.
        let long = String(repeating: "é", count: 60) + "/ 😀x"
        #expect(try Self.parse(#"{"commandId":"\#(long)","name":"n"}"#).get().commandID == long)
        #expect(Self.rejection(#"{"commandId":"\#(long)y","name":"n"}"#)?.detail?.contains("1–64 characters") == true)
        for control in [#"\u0000"#, #"\u001f"#, #"\u007f"#, #"\u0085"#, #"\n"#] {
            let rejection = Self.rejection(#"{"commandId":"a\#(control)b","name":"n"}"#)
            #expect(rejection?.kind == .invalidField, "\(control)")
            #expect(rejection?.commandID == nil, "an id with a control character is never echoed")
        }
    }

    /// Each malformed command, with the words its answer must contain.
    static let malformed: [(payload: String, kind: CommandRejection.Kind, words: String)] = [
        ("[1,2]", .invalidJSON, "not a JSON object"),
        (#""blink""#, .invalidJSON, "not a JSON object"),
        (#"{"commandId":"c","name":"n""#, .invalidJSON, "not valid JSON"),
        (#"{"commandId":"c","name":"n"} trailing"#, .invalidJSON, "not valid JSON"),
        ("", .invalidJSON, "not valid JSON"),
        (#"{"commandId":"c","commandId":"d","name":"n"}"#, .invalidJSON, #"key "commandId" given twice"#),
        (#"{"name":"n"}"#, .invalidField, "commandId is missing"),
        (#"{"commandId":null,"name":"n"}"#, .invalidField, "commandId is missing"),
        (#"{"commandId":7,"name":"n"}"#, .invalidField, "commandId must be a string"),
        (#"{"commandId":"","name":"n"}"#, .invalidField, "commandId must be 1–64 characters"),
        (#"{"commandId":"c"}"#, .invalidField, "name is missing"),
        (#"{"commandId":"c","name":["n"]}"#, .invalidField, "name must be a string"),
        (#"{"commandId":"c","name":""}"#, .invalidField, "name must be 1–128 characters"),
        (#"{"commandId":"c","name":"a\u0000"}"#, .invalidField, "name must be 1–128 characters"),
        (#"{"commandId":"c","name":"n","ttlSeconds":"60"}"#, .invalidField, "ttlSeconds must be a whole positive number"),
        (#"{"commandId":"c","name":"n","ttlSeconds":-5}"#, .invalidField, "ttlSeconds must be a whole positive number"),
        (#"{"commandId":"c","name":"n","ttlSeconds":1.5}"#, .invalidField, "ttlSeconds must be a whole positive number"),
        (#"{"commandId":"c","name":"n","ttlSeconds":6e1}"#, .invalidField, "ttlSeconds must be a whole positive number"),
        (#"{"commandId":"c","name":"n","ttlSeconds":true}"#, .invalidField, "ttlSeconds must be a whole positive number"),
        (#"{"commandId":"c","name":"n","ttlSeconds":0}"#, .invalidField, "ttlSeconds must be at least 1"),
        (#"{"commandId":"c","name":"n","ttlSeconds":86401}"#, .invalidField, "ttlSeconds is over commands.maxTtlSeconds (86400)"),
        (#"{"commandId":"c","name":"n","ttlSeconds":999999999999}"#, .invalidField, "ttlSeconds is over commands.maxTtlSeconds"),
        (#"{"commandId":"c","name":"n","ttlSeconds":99999999999999999999999999999}"#, .invalidField, "ttlSeconds must be a whole positive number"),
        (#"{"commandId":"c","name":"n","expiresAt":"1700000060000"}"#, .invalidField, "expiresAt must be a whole non-negative number"),
        (#"{"commandId":"c","name":"n","expiresAt":1.70000006e12}"#, .invalidField, "expiresAt must be a whole non-negative number"),
        (#"{"commandId":"c","name":"n","expiresAt":-1}"#, .invalidField, "expiresAt must be a whole non-negative number"),
        (#"{"commandId":"c","name":"n","expiresAt":9999999999999999999999}"#, .invalidField, "expiresAt must be a whole non-negative number"),
        (#"{"commandId":"c","name":"n","expiresAt":1699999999999}"#, .alreadyExpired, "expiresAt is in the past"),
        (#"{"commandId":"c","name":"n","expiresAt":1700000000000}"#, .alreadyExpired, "expiresAt is in the past"),
        (#"{"commandId":"c","name":"n","expiresAt":1700086400001}"#, .invalidField, "expiresAt is more than commands.maxTtlSeconds (86400) ahead"),
    ]

    @Test(arguments: malformed)
    func aMalformedCommandIsRejectedAsInvalidWithItsReason(payload: String, kind: CommandRejection.Kind, words: String) throws {
        let rejection = try #require(Self.rejection(payload), "accepted: \(payload)")
        #expect(rejection.reason == .invalidCommand)
        #expect(rejection.kind == kind)
        #expect(rejection.message.hasPrefix("invalid command: "), "\(rejection.message)")
        #expect(rejection.message.contains(words), "\(rejection.message)")
    }

    @Test func aRejectionNamesTheCommandWhenItsIdCouldBeRead() {
        #expect(Self.rejection(#"{"commandId":"c-9","name":"n","ttlSeconds":"60"}"#)?.commandID == "c-9")
        #expect(Self.rejection(#"{"commandId":"c-9","name":"n","ttlSeconds":}"#)?.commandID == "c-9", "broken further on")
        #expect(Self.rejection(#"{"name":"n","commandId":"c-9","params":[}"#)?.commandID == "c-9")
        #expect(Self.rejection(#"{"name":5}"#)?.commandID == nil)
    }

    @Test func aPayloadOverTheLimitIsRefusedBeforeParsingAndStillNamed() throws {
        let limits = CommandLimits(maxPayloadBytes: 16384, maxTtlSeconds: 86400)
        // 1 MB of params behind a readable id.
        let huge = #"{"commandId":"big-1","name":"n","params":""# + String(repeating: "a", count: 1 << 20) + #""}"#
        let rejection = try #require(Self.rejection(huge, limits: limits))
        #expect(rejection.kind == .payloadTooLarge)
        #expect(rejection.commandID == "big-1")
        #expect(rejection.message == "invalid command: payload of \(huge.utf8.count) bytes is over commands.maxPayloadBytes (16384)")
        // Exactly at the limit is fine.
        let head = #"{"commandId":"c","name":"n","params":""#
        let exact = head + String(repeating: "b", count: 100 - head.utf8.count - 2) + #""}"#
        #expect(exact.utf8.count == 100)
        #expect((try? Self.parse(exact, limits: CommandLimits(maxPayloadBytes: 100, maxTtlSeconds: 60)).get()) != nil)
        #expect(Self.rejection(exact + " ", limits: CommandLimits(maxPayloadBytes: 100, maxTtlSeconds: 60))?.kind == .payloadTooLarge)
    }

    @Test func aNonsensicalLimitRefusesEverythingWithoutTrapping() throws {
        for limit in [0, -1, Int.min] {
            let limits = CommandLimits(maxPayloadBytes: limit, maxTtlSeconds: limit)
            #expect(Self.rejection(#"{"commandId":"c","name":"n"}"#, limits: limits)?.kind == .payloadTooLarge)
            guard case .failure = DeviceCommandResult.parse(payload: Array(#"{"commandId":"c","status":"accepted"}"#.utf8), limits: limits) else {
                Issue.record("accepted with limit \(limit)")
                continue
            }
        }
        let noTtl = CommandLimits(maxPayloadBytes: 1024, maxTtlSeconds: Int.max)
        #expect(try Self.parse(#"{"commandId":"c","name":"n","ttlSeconds":999999999999}"#, limits: noTtl).get().expiresAt == Self.now + 999_999_999_999_000)
    }

    @Test func deepNestingIsRefusedNotRecursedInto() throws {
        let deep = #"{"commandId":"c","name":"n","params":"# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        let rejection = try #require(Self.rejection(deep, limits: CommandLimits(maxPayloadBytes: 1 << 20, maxTtlSeconds: 60)))
        #expect(rejection.kind == .invalidJSON)
        #expect(rejection.message.contains("nesting deeper than"))
    }

    @Test func invalidUTF8IsRefused() throws {
        var bytes = Array(#"{"commandId":"c","name":"n"#.utf8)
        bytes += [0xC3, 0x28]
        bytes += Array(#""}"#.utf8)
        guard case .failure(let rejection) = CloudCommand.parse(device: Self.device, payload: bytes, nowMs: Self.now, limits: Self.limits)
        else { Issue.record("accepted invalid UTF-8"); return }
        #expect(rejection.kind == .invalidJSON)
    }
}
