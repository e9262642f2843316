import Foundation

/// Why the test harness could not do what a test asked (as opposed to a failed expectation about the daemon).
struct HarnessError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }

    static func system(_ call: String, _ code: Int32) -> HarnessError {
        HarnessError("\(call) failed: \(String(cString: strerror(code)))")
    }

    static func timeout(_ what: String, details: String = "") -> HarnessError {
        HarnessError("timed out waiting for \(what)" + (details.isEmpty ? "" : "\n\(details)"))
    }
}
