/// Why the hub refused a cloud command (it is answered upstream with status `rejected` and
/// ``message`` and not stored). ``reason`` is one of the contract's hub reasons (CONTRACTS.md §6);
/// ``detail`` says why in plain words and follows it after a colon.
public struct CommandRejection: Error, Sendable, Equatable {
    /// The contract's hub reasons.
    public enum Reason: String, Sendable {
        case queueFull = "queue full"
        case invalidCommand = "invalid command"
        case unknownDevice = "unknown device"
    }

    /// A bounded name for the counter (`gateway.commands.rejected.total{reason}`).
    public enum Kind: String, Sendable, CaseIterable {
        case payloadTooLarge = "payload_too_large"
        case invalidJSON = "invalid_json"
        case invalidField = "invalid_field"
        case alreadyExpired = "already_expired"
        case deviceQueueFull = "device_queue_full"
        case hubQueueFull = "hub_queue_full"
        case unknownDevice = "unknown_device"
    }

    public var reason: Reason
    public var kind: Kind
    /// Plain words after the reason; nil when the reason says it all.
    public var detail: String?
    /// The command's id when it could be read (a valid one at the start of the payload), so the
    /// answer names it; nil otherwise (sent as JSON `null`).
    public var commandID: String?

    public init(reason: Reason, kind: Kind, detail: String?, commandID: String?) {
        self.reason = reason
        self.kind = kind
        self.detail = detail
        self.commandID = commandID
    }

    /// `invalid command: expiresAt is in the past` — the `message` of the upstream answer.
    public var message: String {
        detail.map { "\(reason.rawValue): \($0)" } ?? reason.rawValue
    }

    static func invalid(_ kind: Kind, _ detail: String, commandID: String?) -> CommandRejection {
        CommandRejection(reason: .invalidCommand, kind: kind, detail: detail, commandID: commandID)
    }

    /// The device is not registered on this hub (decided by the caller, which knows the registry).
    public static func unknownDevice(commandID: String?) -> CommandRejection {
        CommandRejection(reason: .unknownDevice, kind: .unknownDevice, detail: nil, commandID: commandID)
    }
}
