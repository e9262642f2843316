import GatewayCore

/// A device's answer to a command (CONTRACTS.md §6), received on `device/{id}/command/result`:
/// `{"commandId", "status": "accepted" | "succeeded" | "failed" | "rejected", "result": <any JSON,
/// optional>, "message": "<optional>"}`.
///
/// `result` is kept as the exact bytes the device sent (validated, never re-encoded).
public struct DeviceCommandResult: Sendable, Equatable {
    public enum Status: String, Sendable, CaseIterable {
        /// The device has the command; it becomes `delivered`.
        case accepted
        case succeeded
        case failed
        case rejected

        /// The command's status after this answer.
        public var commandStatus: CommandStatus {
            switch self {
            case .accepted: .delivered
            case .succeeded: .succeeded
            case .failed: .failed
            case .rejected: .rejected
            }
        }
    }

    /// A device result that cannot be read (counted and logged; nothing is answered to the device).
    public struct Rejection: Error, Sendable, Equatable {
        /// The command's id when it could be read.
        public var commandID: String?
        /// Why, in plain words (safe for a log line: no input text in it).
        public var detail: String
    }

    public var commandID: String
    public var status: Status
    /// The raw JSON of `result`; nil when absent or `null`.
    public var result: [UInt8]?
    public var message: String?

    public init(commandID: String, status: Status, result: [UInt8]? = nil, message: String? = nil) {
        self.commandID = commandID
        self.status = status
        self.result = result
        self.message = message
    }

    /// Validates a device result. Never throws and never traps: a payload over
    /// `limits.maxPayloadBytes` is refused before it is parsed; unknown members are ignored, a
    /// key given twice is refused; `message` is any string without control characters other
    /// than tab, line feed and carriage return.
    public static func parse(payload: [UInt8], limits: CommandLimits) -> Result<DeviceCommandResult, Rejection> {
        let members: [String: JSONScanner.Member]
        switch CommandJSON.members(payload, maxBytes: limits.maxPayloadBytes) {
        case .success(let found):
            members = found
        case .failure(let failure):
            let id = CommandJSON.leadingCommandID(payload, maxBytes: limits.maxPayloadBytes)
            switch failure {
            case .tooLarge(let count):
                return .failure(Rejection(
                    commandID: id, detail: "payload of \(count) bytes is over commands.maxPayloadBytes (\(limits.maxPayloadBytes))"))
            case .invalidJSON(let why): return .failure(Rejection(commandID: id, detail: "not valid JSON (\(why))"))
            case .notAnObject: return .failure(Rejection(commandID: nil, detail: "not a JSON object"))
            case .duplicateKey(let key): return .failure(Rejection(commandID: id, detail: "key \"\(CommandJSON.forLog(key))\" given twice"))
            }
        }
        let commandID: String
        switch CommandJSON.text(members["commandId"], in: payload) {
        case .value(let value) where CommandJSON.isAcceptableText(value, maxLength: CommandJSON.maxCommandIDLength):
            commandID = value
        default:
            return .failure(Rejection(
                commandID: nil,
                detail: "commandId must be a string of 1–\(CommandJSON.maxCommandIDLength) characters without control characters"))
        }
        let status: Status
        switch CommandJSON.text(members["status"], in: payload) {
        case .value(let value) where Status(rawValue: value) != nil:
            status = Status(rawValue: value)!
        default:
            return .failure(Rejection(commandID: commandID, detail: "status must be one of accepted, succeeded, failed, rejected"))
        }
        var message: String? = nil
        switch CommandJSON.text(members["message"], in: payload) {
        case .absent: break
        case .wrongKind: return .failure(Rejection(commandID: commandID, detail: "message must be a string"))
        case .value(let value):
            guard !value.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r") || (0x7F...0x9F).contains($0.value) })
            else { return .failure(Rejection(commandID: commandID, detail: "message must not hold control characters")) }
            message = value
        }
        let result: [UInt8]? = members["result"].flatMap { $0.kind == .null ? nil : Array(payload[$0.range]) }
        return .success(DeviceCommandResult(commandID: commandID, status: status, result: result, message: message))
    }
}
