import Foundation

/// Why the test harness could not do what a test asked (as opposed to a failed expectation about the daemon).
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }

    public static func system(_ call: String, _ code: Int32) -> HarnessError {
        HarnessError("\(call) failed: \(String(cString: strerror(code)))")
    }

    public static func timeout(_ what: String, details: String = "") -> HarnessError {
        HarnessError("timed out waiting for \(what)" + (details.isEmpty ? "" : "\n\(details)"))
    }
}
