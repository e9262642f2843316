import Shadow
import Testing

@Suite struct ShadowDeltaTests {
    struct Case: Sendable, CustomStringConvertible {
        var desired: String
        var reported: String
        var delta: String
        var description: String { "desired \(desired) reported \(reported)" }
    }

    static let cases: [Case] = [
        // Equal: nothing to do.
        Case(desired: #"{}"#, reported: #"{}"#, delta: #"{}"#),
        Case(desired: #"{"led":"on"}"#, reported: #"{"led":"on"}"#, delta: #"{}"#),
        // A key reported lacks, or with another value.
        Case(desired: #"{"led":"on"}"#, reported: #"{}"#, delta: #"{"led":"on"}"#),
        Case(desired: #"{"led":"on","level":3}"#, reported: #"{"led":"off","level":3}"#, delta: #"{"led":"on"}"#),
        // Keys only reported has are not in the delta.
        Case(desired: #"{"led":"on"}"#, reported: #"{"led":"on","temp":21.5}"#, delta: #"{}"#),
        // Nested objects: only the nested keys that differ.
        Case(desired: #"{"cfg":{"a":1,"b":2}}"#, reported: #"{"cfg":{"a":1,"b":3,"c":4}}"#, delta: #"{"cfg":{"b":2}}"#),
        Case(desired: #"{"cfg":{"a":{"x":1,"y":2}}}"#, reported: #"{"cfg":{"a":{"x":1,"y":5}}}"#, delta: #"{"cfg":{"a":{"y":2}}}"#),
        Case(desired: #"{"cfg":{"a":1}}"#, reported: #"{"cfg":{"a":1,"b":2}}"#, delta: #"{}"#),
        // An object against a non-object or nothing: the whole desired value.
        Case(desired: #"{"cfg":{"a":1}}"#, reported: #"{"cfg":5}"#, delta: #"{"cfg":{"a":1}}"#),
        Case(desired: #"{"cfg":{}}"#, reported: #"{}"#, delta: #"{"cfg":{}}"#),
        Case(desired: #"{"cfg":{}}"#, reported: #"{"cfg":{"a":1}}"#, delta: #"{}"#),
        // Arrays are compared whole.
        Case(desired: #"{"list":[1,2,3]}"#, reported: #"{"list":[1,2]}"#, delta: #"{"list":[1,2,3]}"#),
        Case(desired: #"{"list":[{"a":1}]}"#, reported: #"{"list":[{"a":1}]}"#, delta: #"{}"#),
        // Numbers by value, strings by text, types matter.
        Case(desired: #"{"level":1.0}"#, reported: #"{"level":1}"#, delta: #"{}"#),
        Case(desired: #"{"id":9007199254740993}"#, reported: #"{"id":9007199254740992}"#, delta: #"{"id":9007199254740993}"#),
        Case(desired: #"{"level":1}"#, reported: #"{"level":"1"}"#, delta: #"{"level":1}"#),
        Case(desired: #"{"on":true}"#, reported: #"{"on":null}"#, delta: #"{"on":true}"#),
        // Member order does not make a difference.
        Case(desired: #"{"cfg":{"a":1,"b":2}}"#, reported: #"{"cfg":{"b":2,"a":1}}"#, delta: #"{}"#),
    ]

    @Test(arguments: cases)
    func delta(_ example: Case) throws {
        let delta = ShadowDelta.delta(desired: try object(example.desired), reported: try object(example.reported))
        #expect(text(JSONValue.object(delta).encoded()) == example.delta)
    }
}
