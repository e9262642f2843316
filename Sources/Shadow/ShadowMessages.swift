import GatewayCore

/// A cloud update (`hubs/{hubId}/shadow/{deviceId}/update`, CONTRACTS.md §7):
/// `{"desired": {merge patch}, "version": <optional expected version>, "clientToken": "<optional>"}`.
public struct ShadowUpdate: Sendable, Equatable {
    /// The merge patch for `desired` (always an object).
    public var desired: JSONObject
    /// The version the cloud expects the document to have; nil: no check.
    public var version: Int64?
    public var clientToken: String?

    public init(desired: JSONObject, version: Int64? = nil, clientToken: String? = nil) {
        self.desired = desired
        self.version = version
        self.clientToken = clientToken
    }

    /// Parses an update; refusals carry the message's `clientToken` whenever one can be read.
    ///
    /// The message is refused when it is over `maxBytes` (before it is parsed: `too_large`), not
    /// a JSON object, has no `desired` or one that is not an object, a `version` that is not a
    /// whole number from 0 to 2^63−1, a `clientToken` that is not 1–64 characters without
    /// control characters, or a `reported` member (the device owns it; all `invalid`). `null`
    /// for `version` or `clientToken` counts as absent; other members are ignored.
    public static func parse(_ bytes: [UInt8], maxBytes: Int) throws(ShadowRefusal) -> ShadowUpdate {
        let message = try ShadowMessage(bytes, maxBytes: maxBytes)
        guard message.object["reported"] == nil else {
            throw message.refusal("an update from the cloud cannot change reported (the device owns it)")
        }
        let desired = try message.patch(named: "desired")
        var version: Int64?
        switch message.object["version"] {
        case nil, .null?: version = nil
        case .number(let number)?:
            guard let value = number.int64, value >= 0 else {
                throw message.refusal("version must be a whole number from 0 to \(Int64.max)")
            }
            version = value
        default: throw message.refusal("version must be a whole number from 0 to \(Int64.max)")
        }
        return ShadowUpdate(desired: desired, version: version, clientToken: message.clientToken)
    }
}

/// A device report (`device/{id}/shadow/report`, CONTRACTS.md §7):
/// `{"reported": {merge patch}, "clientToken": "<optional>"}`.
public struct ShadowReport: Sendable, Equatable {
    /// The merge patch for `reported` (always an object).
    public var reported: JSONObject
    public var clientToken: String?

    public init(reported: JSONObject, clientToken: String? = nil) {
        self.reported = reported
        self.clientToken = clientToken
    }

    /// Parses a report with the rules of ``ShadowUpdate/parse(_:maxBytes:)``, `reported` for
    /// `desired`; a `desired` member is refused (the cloud owns it), a `version` is ignored (reports
    /// are never checked against a version).
    public static func parse(_ bytes: [UInt8], maxBytes: Int) throws(ShadowRefusal) -> ShadowReport {
        let message = try ShadowMessage(bytes, maxBytes: maxBytes)
        guard message.object["desired"] == nil else {
            throw message.refusal("a device report cannot change desired (the cloud owns it)")
        }
        return ShadowReport(reported: try message.patch(named: "reported"), clientToken: message.clientToken)
    }
}

/// What updates and reports share: the size cap, the JSON object, the `clientToken`.
private struct ShadowMessage {
    /// The longest `clientToken`, in characters (Unicode scalars).
    static let maxClientTokenLength = 64

    let object: JSONObject
    let clientToken: String?

    init(_ bytes: [UInt8], maxBytes: Int) throws(ShadowRefusal) {
        guard bytes.count <= maxBytes else {
            throw ShadowRefusal(
                .tooLarge, "the message has \(bytes.count) bytes, more than shadow.maxMessageBytes (\(maxBytes))",
                clientToken: Self.validToken(JSONScanner.leadingString(named: "clientToken", in: bytes)))
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes, maxBytes: maxBytes)
        } catch {
            throw ShadowRefusal(
                .invalid, "not JSON: \(error)",
                clientToken: Self.validToken(JSONScanner.leadingString(named: "clientToken", in: bytes)))
        }
        guard case .object(let object) = value else { throw ShadowRefusal(.invalid, "the message is not a JSON object") }
        self.object = object
        switch object["clientToken"] {
        case nil, .null?: clientToken = nil
        case .string(let token)?:
            guard let valid = Self.validToken(token) else {
                throw ShadowRefusal(.invalid, "clientToken must be 1–\(Self.maxClientTokenLength) characters without control characters")
            }
            clientToken = valid
        default:
            throw ShadowRefusal(.invalid, "clientToken must be a string")
        }
    }

    func refusal(_ reason: String) -> ShadowRefusal {
        ShadowRefusal(.invalid, reason, clientToken: clientToken)
    }

    /// The member `name`, which must be an object (a merge patch for one side of the document).
    func patch(named name: String) throws(ShadowRefusal) -> JSONObject {
        switch object[name] {
        case .object(let patch)?: return patch
        case nil: throw refusal("\(name) is missing")
        default: throw refusal("\(name) must be an object (a JSON merge patch)")
        }
    }

    static func validToken(_ token: String?) -> String? {
        guard let token else { return nil }
        let scalars = token.unicodeScalars
        guard !scalars.isEmpty, scalars.count <= maxClientTokenLength else { return nil }
        guard scalars.allSatisfy({ !($0.value < 0x20 || (0x7F...0x9F).contains($0.value)) }) else { return nil }
        return token
    }
}
