import Foundation
import Logging
import Shadow

/// Parses test JSON (generous limits: the tests of the limits pass their own).
func json(_ text: String) throws -> JSONValue {
    try JSONValue.parse(Array(text.utf8), maxBytes: 1 << 22)
}

/// Parses a test object.
func object(_ text: String) throws -> JSONObject {
    guard case .object(let object) = try json(text) else { throw TestFailure("not an object: \(text)") }
    return object
}

func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A logger that writes nothing.
let quietLogger = Logger(label: "shadow-tests", factory: { _ in SwiftLogNoOpLogHandler() })
