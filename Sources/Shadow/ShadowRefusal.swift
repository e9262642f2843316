import GatewayCore

/// Why an update or a report was not applied, as the cloud (on `hubs/{hubId}/shadow/{deviceId}/rejected`)
/// or an operator sees it: a ``Code`` for programs and a reason in plain words for people.
///
/// Its JSON, ``encoded()``, is the contract's `{"clientToken", "code": "version_conflict",
/// "version": n}` plus a `reason`; `clientToken` is `null` when the message named none (or an
/// unreadable one), `version` is the document's current version (absent only when the refusal
/// never reached a document).
public struct ShadowRefusal: Error, Sendable, Equatable {
    public enum Code: String, Sendable, CaseIterable {
        /// The update's expected `version` is not the document's (CONTRACTS.md §7).
        case versionConflict = "version_conflict"
        /// Not a well-formed update or report (not JSON, wrong types, missing `desired`/`reported`,
        /// a bad `clientToken`, the other side's section, nested too deep).
        case invalid
        /// The message is over `shadow.maxMessageBytes`, or the document would grow over `shadow.maxBytes`.
        case tooLarge = "too_large"
        /// The device has no document yet and `shadow.maxDevices` documents exist.
        case tooManyDevices = "too_many_devices"
    }

    public var code: Code
    /// What is wrong, in plain words (bounded: it never quotes more than 40 characters of input).
    public var reason: String
    /// The message's `clientToken`, when it had a valid one.
    public var clientToken: String?
    /// The document's version when the refusal was made.
    public var version: Int64?

    public init(_ code: Code, _ reason: String, clientToken: String? = nil, version: Int64? = nil) {
        self.code = code
        self.reason = reason
        self.clientToken = clientToken
        self.version = version
    }

    /// `{"clientToken":…,"code":…,"version":n,"reason":…}`.
    public func encoded() -> [UInt8] {
        var json = JSONText(capacity: 96 + reason.utf8.count)
        json.field("clientToken", string: clientToken)
        json.field("code", string: code.rawValue)
        if let version { json.field("version", int: version) }
        json.field("reason", string: reason)
        return json.finish()
    }
}
