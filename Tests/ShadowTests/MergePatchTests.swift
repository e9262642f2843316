import Shadow
import Testing

/// RFC 7386: every example of Appendix A, and the worked example of section 3.
@Suite struct MergePatchTests {
    struct Example: Sendable, CustomStringConvertible {
        var original: String
        var patch: String
        var result: String
        var description: String { "\(original) + \(patch)" }
    }

    static let appendixA: [Example] = [
        Example(original: #"{"a":"b"}"#, patch: #"{"a":"c"}"#, result: #"{"a":"c"}"#),
        Example(original: #"{"a":"b"}"#, patch: #"{"b":"c"}"#, result: #"{"a":"b","b":"c"}"#),
        Example(original: #"{"a":"b"}"#, patch: #"{"a":null}"#, result: #"{}"#),
        Example(original: #"{"a":"b","b":"c"}"#, patch: #"{"a":null}"#, result: #"{"b":"c"}"#),
        Example(original: #"{"a":["b"]}"#, patch: #"{"a":"c"}"#, result: #"{"a":"c"}"#),
        Example(original: #"{"a":"c"}"#, patch: #"{"a":["b"]}"#, result: #"{"a":["b"]}"#),
        Example(original: #"{"a": {"b": "c"}}"#, patch: #"{"a": {"b": "d", "c": null}}"#, result: #"{"a": {"b": "d"}}"#),
        Example(original: #"{"a": [{"b":"c"}]}"#, patch: #"{"a": [1]}"#, result: #"{"a": [1]}"#),
        Example(original: #"["a","b"]"#, patch: #"["c","d"]"#, result: #"["c","d"]"#),
        Example(original: #"{"a":"b"}"#, patch: #"["c"]"#, result: #"["c"]"#),
        Example(original: #"{"a":"foo"}"#, patch: #"null"#, result: #"null"#),
        Example(original: #"{"a":"foo"}"#, patch: #""bar""#, result: #""bar""#),
        Example(original: #"{"e":null}"#, patch: #"{"a":1}"#, result: #"{"e":null,"a":1}"#),
        Example(original: #"[1,2]"#, patch: #"{"a":"b","c":null}"#, result: #"{"a":"b"}"#),
        Example(original: #"{}"#, patch: #"{"a":{"bb":{"ccc":null}}}"#, result: #"{"a":{"bb":{}}}"#),
    ]

    @Test func theAppendixHasAllFifteenExamples() {
        #expect(Self.appendixA.count == 15)
    }

    @Test(arguments: appendixA)
    func appendixAExample(_ example: Example) throws {
        let result = MergePatch.apply(patch: try json(example.patch), to: try json(example.original))
        let expected = try json(example.result)
        #expect(result == expected)
        // Same members in the same order: the bytes are the expected result's, compacted.
        #expect(text(result.encoded()) == text(expected.encoded()))
    }

    @Test func theWorkedExampleOfSection3KeepsTheTargetsOrderAndAppendsNewKeys() throws {
        let target = try json(
            #"{"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"}, "tags": ["example", "sample"], "content": "This will be unchanged"}"#)
        let patch = try json(#"{"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": null}, "tags": ["example"]}"#)
        let result = MergePatch.apply(patch: patch, to: target)
        #expect(
            text(result.encoded())
                == #"{"title":"Hello!","author":{"givenName":"John"},"tags":["example"],"content":"This will be unchanged","phoneNumber":"+01-123-456-7890"}"#)
    }

    @Test func anObjectPatchOnObjectsIsTheObjectCase() throws {
        let result = MergePatch.apply(patch: try object(#"{"led": "on", "old": null, "n": {"x": null}}"#), to: try object(#"{"old": true}"#))
        #expect(text(JSONValue.object(result).encoded()) == #"{"led":"on","n":{}}"#)
    }
}
