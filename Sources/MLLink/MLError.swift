import GRPCCore

/// What went wrong on a call to the ML service, in one type for every call.
public struct MLError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The call's deadline passed.
        case deadlineExceeded = "deadline exceeded"
        /// The endpoint could not be reached or dropped the connection.
        case unavailable
        /// The service refused the request (bad argument, unauthenticated, not implemented, ...).
        case rejected
        /// Anything else the service or transport reported.
        case failed
    }

    public var code: Code
    public var message: String

    /// Whether the same request may be sent again (to another endpoint): the service did not
    /// process it, or processing it twice is harmless.
    public var isRetriable: Bool { code == .deadlineExceeded || code == .unavailable }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "ML \(code.rawValue): \(message)" }

    /// Maps a gRPC status to the gateway's codes.
    init(_ error: RPCError) {
        switch error.code {
        case .deadlineExceeded:
            self.init(.deadlineExceeded, error.message)
        case .unavailable, .cancelled, .resourceExhausted, .aborted:
            self.init(.unavailable, "\(error.code): \(error.message)")
        case .invalidArgument, .unauthenticated, .permissionDenied, .unimplemented, .notFound, .failedPrecondition,
            .outOfRange, .alreadyExists:
            self.init(.rejected, "\(error.code): \(error.message)")
        default:
            self.init(.failed, "\(error.code): \(error.message)")
        }
    }
}
