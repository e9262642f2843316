/// The one error of the Wyoming client: a code, whether a retry (on this or another server) may help, and a
/// message a person can act on.
public struct WyomingError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable, CaseIterable {
        /// The TCP connect failed or did not finish within `timeouts.connect`.
        case connectFailed
        /// The call's deadline passed (a silent or dripping server).
        case deadlineExceeded
        /// The server closed (or reset) the connection before the answer.
        case connectionClosed
        /// The header line is longer than `limits.maxHeaderBytes`.
        case headerTooLong
        /// The header is not a JSON object with a string `type`.
        case invalidHeader
        /// `data_length` or `payload_length` is negative, not an integer, or over its limit.
        case invalidLength
        /// The data bytes are not a JSON object.
        case invalidData
        /// A well-formed event that makes no sense here (missing field, wrong type, unexpected event).
        case unexpectedEvent
        /// The answer is larger than a limit allows (audio, event count).
        case limitExceeded
        /// The server answered with an `error` event (its text is in the message).
        case serverError
        /// An event this client was asked to send cannot be written.
        case invalidEvent
        /// Another failure of the connection's machinery while the call ran.
        case io
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether the same call may succeed on a retry: a server that could not be reached, was silent or hung
    /// up; not a server that answers with garbage.
    public var isRetriable: Bool {
        switch code {
        case .connectFailed, .deadlineExceeded, .connectionClosed, .io: true
        default: false
        }
    }

    public var description: String { "wyoming \(code.rawValue): \(message)" }
}
