/// Errors of the outbox. ``isRetriable`` tells whether trying again later can help.
public struct OutboxError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// The database could not be opened or created.
        case openFailed
        /// The file is damaged; it is quarantined at the next start.
        case corrupt
        /// A read or write failed.
        case io
        /// The outbox was closed.
        case closed
    }

    public var code: Code
    public var message: String

    public var isRetriable: Bool { code == .io }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "outbox \(code.rawValue): \(message)" }
}
