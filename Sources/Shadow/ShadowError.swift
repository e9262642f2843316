/// Errors of the shadow module: JSON the parser refuses, and the store's failures.
/// ``isRetriable`` tells whether trying the same thing again later can help.
public struct ShadowError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        // JSON refused by ``JSONValue/parse(_:maxBytes:maxDepth:)``.
        /// More bytes than the caller allows.
        case tooLarge
        /// Arrays and objects nested deeper than allowed.
        case tooDeep
        /// An object names the same key twice.
        case duplicateKey
        /// Bytes that are not UTF-8 (or a `\u` escape that is not a Unicode scalar).
        case invalidUTF8
        /// Anything else that is not JSON (RFC 8259): `NaN`, `01`, a trailing comma, a cut.
        case syntax

        // The store.
        /// The database could not be opened or created.
        case openFailed
        /// A read or write failed (the disk, a lock); nothing was changed.
        case storage
        /// The store was closed.
        case closed
    }

    public var code: Code
    /// What is wrong, in plain words.
    public var message: String
    /// Byte offset in the input where the parser stopped (parse errors only).
    public var offset: Int?

    public init(_ code: Code, _ message: String, offset: Int? = nil) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var isRetriable: Bool { code == .storage }

    public var description: String {
        if let offset { return "\(message) (at byte \(offset))" }
        return message
    }
}
