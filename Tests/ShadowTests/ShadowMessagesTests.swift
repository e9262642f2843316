import Shadow
import Testing

@Suite struct ShadowMessagesTests {
    static func update(_ text: String, maxBytes: Int = 8192) -> Result<ShadowUpdate, ShadowRefusal> {
        Result { () throws(ShadowRefusal) -> ShadowUpdate in try ShadowUpdate.parse(Array(text.utf8), maxBytes: maxBytes) }
    }

    static func report(_ text: String, maxBytes: Int = 8192) -> Result<ShadowReport, ShadowRefusal> {
        Result { () throws(ShadowRefusal) -> ShadowReport in try ShadowReport.parse(Array(text.utf8), maxBytes: maxBytes) }
    }

    static func refusal<T>(_ result: Result<T, ShadowRefusal>) -> ShadowRefusal? {
        if case .failure(let refusal) = result { return refusal }
        return nil
    }

    @Test func aFullUpdateParses() throws {
        let update = try Self.update(#"{"desired": {"led": "on", "old": null}, "version": 7, "clientToken": "tok-1", "extra": [1]}"#).get()
        #expect(update.desired == (try object(#"{"led": "on", "old": null}"#)))
        #expect(update.version == 7)
        #expect(update.clientToken == "tok-1")
    }

    @Test func versionAndClientTokenAreOptionalAndNullIsAbsent() throws {
        let bare = try Self.update(#"{"desired": {}}"#).get()
        #expect(bare.version == nil && bare.clientToken == nil)
        let nulls = try Self.update(#"{"desired": {}, "version": null, "clientToken": null}"#).get()
        #expect(nulls.version == nil && nulls.clientToken == nil)
        #expect(try Self.update(#"{"desired": {}, "version": 0}"#).get().version == 0)
        #expect(try Self.update(#"{"desired": {}, "version": 9223372036854775807}"#).get().version == .max)
    }

    @Test(arguments: [
        (#"[1]"#, "not a JSON object"),
        (#""desired""#, "not a JSON object"),
        (#"{}"#, "desired is missing"),
        (#"{"desired": null}"#, "desired must be an object"),
        (#"{"desired": [1]}"#, "desired must be an object"),
        (#"{"desired": "on"}"#, "desired must be an object"),
        (#"{"desired": {}, "version": -1}"#, "version must be a whole number"),
        (#"{"desired": {}, "version": 1.5}"#, "version must be a whole number"),
        (#"{"desired": {}, "version": 1e2}"#, "version must be a whole number"),
        (#"{"desired": {}, "version": "3"}"#, "version must be a whole number"),
        (#"{"desired": {}, "version": 9223372036854775808}"#, "version must be a whole number"),
        (#"{"desired": {}, "clientToken": 5}"#, "clientToken must be a string"),
        (#"{"desired": {}, "clientToken": ""}"#, "clientToken must be 1–64 characters"),
        (#"{"desired": {}, "clientToken": "a\nb"}"#, "clientToken must be 1–64 characters"),
        (#"{"desired": {}, "clientToken": "a\u0085b"}"#, "clientToken must be 1–64 characters"),
        (#"{"desired": {}, "reported": {"led": "on"}}"#, "cannot change reported"),
        (#"{"desired": {}, "desired": {}}"#, "not JSON"),
        (#"{"desired": {"a": NaN}}"#, "not JSON"),
    ])
    func invalidUpdatesAreRefusedWithAReason(_ example: (String, String)) throws {
        let refusal = try #require(Self.refusal(Self.update(example.0)))
        #expect(refusal.code == .invalid)
        #expect(refusal.reason.contains(example.1), "\(refusal.reason)")
    }

    @Test func aClientTokenOfSixtyFourCharactersIsTheLongestAccepted() throws {
        let token64 = String(repeating: "é", count: 64)
        #expect(try Self.update(#"{"desired": {}, "clientToken": "\#(token64)"}"#).get().clientToken == token64)
        #expect(Self.refusal(Self.update(#"{"desired": {}, "clientToken": "\#(token64)x"}"#))?.code == .invalid)
    }

    @Test func refusalsAfterTheTokenWasReadCarryIt() throws {
        let refusal = try #require(Self.refusal(Self.update(#"{"clientToken": "t1", "desired": 3}"#)))
        #expect(refusal.clientToken == "t1")
        // Broken JSON: the token is read from the start of the message.
        let broken = try #require(Self.refusal(Self.update(#"{"clientToken": "t2", "desired": {"a": }"#)))
        #expect(broken.code == .invalid && broken.clientToken == "t2")
    }

    @Test func aMessageOverTheLimitIsRefusedTooLargeBeforeParsingAndKeepsItsToken() throws {
        let big = #"{"clientToken": "t3", "desired": {"blob": ""# + String(repeating: "x", count: 9000) + #""}}"#
        let refusal = try #require(Self.refusal(Self.update(big)))
        #expect(refusal.code == .tooLarge)
        #expect(refusal.clientToken == "t3")
        #expect(refusal.reason.contains("shadow.maxMessageBytes (8192)"))
        #expect(Self.refusal(Self.update(big, maxBytes: 10_000)) == nil)
        // Far over, and not JSON at all: still refused by size, cheaply.
        let megabyte = String(repeating: "[", count: 1 << 20)
        #expect(Self.refusal(Self.update(megabyte))?.code == .tooLarge)
        #expect(Self.refusal(Self.update(megabyte, maxBytes: 1 << 21))?.code == .invalid)
    }

    @Test func aReportParsesAndMayNotChangeDesired() throws {
        let report = try Self.report(#"{"reported": {"led": "on"}, "clientToken": "r1", "version": 99}"#).get()
        #expect(report.reported == (try object(#"{"led": "on"}"#)))
        #expect(report.clientToken == "r1")
        #expect(Self.refusal(Self.report(#"{"reported": {}, "desired": {"led": "on"}}"#))?.reason.contains("cannot change desired") == true)
        #expect(Self.refusal(Self.report(#"{"desired": {}}"#))?.reason == "a device report cannot change desired (the cloud owns it)")
        #expect(Self.refusal(Self.report(#"{}"#))?.reason == "reported is missing")
        #expect(Self.refusal(Self.report(#"{"reported": 1}"#))?.code == .invalid)
    }

    @Test func theRefusalEncodesTheContractsFieldsAndAReason() {
        let conflict = ShadowRefusal(.versionConflict, "expected version 3, the document is at 5", clientToken: "c\"1", version: 5)
        #expect(text(conflict.encoded()) == #"{"clientToken":"c\"1","code":"version_conflict","version":5,"reason":"expected version 3, the document is at 5"}"#)
        let invalid = ShadowRefusal(.invalid, "not JSON")
        #expect(text(invalid.encoded()) == #"{"clientToken":null,"code":"invalid","reason":"not JSON"}"#)
    }

    /// Mutated updates and reports: never a crash; a refusal's reason stays short whatever the
    /// input, and its JSON is valid (it goes back to the sender).
    @Test func mutatedMessagesAreParsedOrRefusedWithAShortReasonAndValidJSON() throws {
        let seeds = [
            Array(#"{"desired":{"led":"on","cfg":{"a":[1,2.5,null]}},"version":3,"clientToken":"tok"}"#.utf8),
            Array(#"{"reported":{"led":"off","\u00e9":true},"clientToken":"r-1"}"#.utf8),
        ]
        let alphabet = Array(#"{}[]:,"\-.0123456789eEtrufalsn desiredreportedversionclientToken"#.utf8) + [0x00, 0x0A, 0x80, 0xC3, 0xFF]
        var random = SplitMix(seed: 0xC0FFEE)
        var refused = 0
        for round in 0..<4000 {
            var bytes = seeds[round % 2]
            for _ in 0..<(1 + random.next(3)) {
                guard !bytes.isEmpty else { break }
                let position = random.next(bytes.count)
                switch random.next(3) {
                case 0: bytes[position] = alphabet[random.next(alphabet.count)]
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet[random.next(alphabet.count)], at: position)
                }
            }
            let input = bytes
            let refusals = [
                Self.refusal(Result { () throws(ShadowRefusal) in try ShadowUpdate.parse(input, maxBytes: 80) }),
                Self.refusal(Result { () throws(ShadowRefusal) in try ShadowReport.parse(input, maxBytes: 80) }),
            ]
            for refusal in refusals.compactMap({ $0 }) {
                refused += 1
                #expect(refusal.reason.count <= 160, "\(refusal.reason)")
                #expect((try? JSONValue.parse(refusal.encoded(), maxBytes: 1000)) != nil, "\(text(refusal.encoded()))")
            }
        }
        #expect(refused > 1000)
    }
}
