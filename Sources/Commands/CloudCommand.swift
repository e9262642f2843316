import GatewayCore

/// A validated command from the cloud (CONTRACTS.md §6), received on
/// `hubs/{hubId}/commands/{deviceId}`:
/// `{"commandId": "<1–64 chars>", "name": "<1–128 chars>", "params": <any JSON, optional>,
/// "expiresAt": <ms, optional>, "ttlSeconds": <optional>}`.
///
/// `params` is kept as the exact bytes the cloud sent (validated, never re-encoded). A relative
/// `ttlSeconds` becomes an absolute ``expiresAt`` at receipt; with both, the earlier one counts.
public struct CloudCommand: Sendable, Equatable {
    public var device: DeviceID
    public var commandID: String
    public var name: String
    /// The raw JSON of `params`; nil when absent or `null`.
    public var params: [UInt8]?
    /// Milliseconds since the epoch after which the command is never delivered; nil: never expires.
    public var expiresAt: Int64?
    /// When the hub received it (ms since the epoch).
    public var receivedAt: Int64

    public init(device: DeviceID, commandID: String, name: String, params: [UInt8]?, expiresAt: Int64?, receivedAt: Int64) {
        self.device = device
        self.commandID = commandID
        self.name = name
        self.params = params
        self.expiresAt = expiresAt
        self.receivedAt = receivedAt
    }

    /// Validates a cloud command for `device`. Never throws and never traps, whatever `payload`
    /// holds: a payload over `limits.maxPayloadBytes` is refused before it is parsed, nesting is
    /// bounded by ``JSONScanner``, numbers are read only when they fit. Unknown members are
    /// ignored; a key given twice is refused. `expiresAt` not after `nowMs` is refused
    /// (``CommandRejection/Kind/alreadyExpired``), and so is an expiry more than
    /// `limits.maxTtlSeconds` ahead.
    ///
    /// ```swift
    /// switch CloudCommand.parse(device: device, payload: message.payload, nowMs: now, limits: configuration.limits) {
    /// case .success(let command): … // enqueue it
    /// case .failure(let rejection): … // answer `rejected` with rejection.message
    /// }
    /// ```
    /// The command's id when a valid one can be read from the start of `payload` (for answering a
    /// command refused before it is parsed, e.g. for an unknown device); nil otherwise.
    public static func leadingCommandID(in payload: [UInt8], limits: CommandLimits) -> String? {
        CommandJSON.leadingCommandID(payload, maxBytes: limits.maxPayloadBytes)
    }

    public static func parse(device: DeviceID, payload: [UInt8], nowMs: Int64, limits: CommandLimits) -> Result<CloudCommand, CommandRejection> {
        let members: [String: JSONScanner.Member]
        switch CommandJSON.members(payload, maxBytes: limits.maxPayloadBytes) {
        case .success(let found):
            members = found
        case .failure(let failure):
            let id = CommandJSON.leadingCommandID(payload, maxBytes: limits.maxPayloadBytes)
            switch failure {
            case .tooLarge(let count):
                return .failure(.invalid(
                    .payloadTooLarge, "payload of \(count) bytes is over commands.maxPayloadBytes (\(limits.maxPayloadBytes))", commandID: id))
            case .invalidJSON(let why):
                return .failure(.invalid(.invalidJSON, "not valid JSON (\(why))", commandID: id))
            case .notAnObject:
                return .failure(.invalid(.invalidJSON, "not a JSON object", commandID: nil))
            case .duplicateKey(let key):
                return .failure(.invalid(.invalidJSON, "key \"\(CommandJSON.forLog(key))\" given twice", commandID: id))
            }
        }

        let commandID: String
        switch CommandJSON.text(members["commandId"], in: payload) {
        case .absent:
            return .failure(.invalid(.invalidField, "commandId is missing", commandID: nil))
        case .wrongKind:
            return .failure(.invalid(.invalidField, "commandId must be a string", commandID: nil))
        case .value(let value):
            guard CommandJSON.isAcceptableText(value, maxLength: CommandJSON.maxCommandIDLength) else {
                return .failure(.invalid(
                    .invalidField, "commandId must be 1–\(CommandJSON.maxCommandIDLength) characters without control characters",
                    commandID: nil))
            }
            commandID = value
        }
        func invalid(_ detail: String, kind: CommandRejection.Kind = .invalidField) -> Result<CloudCommand, CommandRejection> {
            .failure(.invalid(kind, detail, commandID: commandID))
        }

        let name: String
        switch CommandJSON.text(members["name"], in: payload) {
        case .absent: return invalid("name is missing")
        case .wrongKind: return invalid("name must be a string")
        case .value(let value):
            guard CommandJSON.isAcceptableText(value, maxLength: CommandJSON.maxNameLength) else {
                return invalid("name must be 1–\(CommandJSON.maxNameLength) characters without control characters")
            }
            name = value
        }

        let params: [UInt8]? = members["params"].flatMap { $0.kind == .null ? nil : Array(payload[$0.range]) }

        // The furthest expiry accepted; maxTtlSeconds is a configured Int, kept from overflowing.
        let maxTtlMs = Int64(clamping: limits.maxTtlSeconds).multipliedReportingOverflow(by: 1000)
        let latest = maxTtlMs.overflow ? Int64.max : nowMs.addingReportingOverflow(maxTtlMs.partialValue).partialValue
        var expiresAt: Int64? = nil
        if let member = members["expiresAt"], member.kind != .null {
            // 15 digits reach the year 33658: enough for any date and far from overflowing.
            guard member.kind == .number, let value = CommandJSON.integer(payload[member.range], maxDigits: 15) else {
                return invalid("expiresAt must be a whole non-negative number of milliseconds since the epoch")
            }
            guard value > nowMs else { return invalid("expiresAt is in the past", kind: .alreadyExpired) }
            guard value <= latest else { return invalid("expiresAt is more than commands.maxTtlSeconds (\(limits.maxTtlSeconds)) ahead") }
            expiresAt = value
        }
        if let member = members["ttlSeconds"], member.kind != .null {
            guard member.kind == .number, let seconds = CommandJSON.integer(payload[member.range], maxDigits: 12) else {
                return invalid("ttlSeconds must be a whole positive number of seconds")
            }
            guard seconds >= 1 else { return invalid("ttlSeconds must be at least 1") }
            guard seconds <= Int64(clamping: limits.maxTtlSeconds) else {
                return invalid("ttlSeconds is over commands.maxTtlSeconds (\(limits.maxTtlSeconds))")
            }
            // 12 digits of seconds are under 10^15 ms: only an absurd nowMs could overflow.
            let sum = nowMs.addingReportingOverflow(seconds * 1000)
            let byTTL = sum.overflow ? Int64.max : sum.partialValue
            expiresAt = min(expiresAt ?? byTTL, byTTL)
        }
        return .success(CloudCommand(
            device: device, commandID: commandID, name: name, params: params, expiresAt: expiresAt, receivedAt: nowMs))
    }
}
