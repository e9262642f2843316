import GatewayCore

/// `device/{id}/command` (CONTRACTS.md §6): `{"commandId", "name", "params", "expiresAt"}`.
///
/// All four keys are always present: `params` is the cloud's raw JSON, or `null` when the cloud
/// sent none; `expiresAt` is the absolute expiry in ms (also when the cloud gave `ttlSeconds`),
/// or `null` when the command never expires.
public enum CommandDeliveryPayload {
    public static func encode(_ record: CommandRecord) -> [UInt8] {
        var json = JSONText(capacity: 96 + record.commandID.utf8.count + record.name.utf8.count + (record.params?.count ?? 4))
        json.field("commandId", string: record.commandID)
        json.field("name", string: record.name)
        if let params = record.params { json.field("params", rawJSON: params) } else { json.null("params") }
        json.field("expiresAt", int: record.expiresAt)
        return json.finish()
    }
}

/// `hubs/{hubId}/commands/{deviceId}/status` (CONTRACTS.md §6):
/// `{"commandId", "hubId", "deviceId", "status", "result", "message", "at"}` — `result` the device's
/// raw JSON or `null`, `message` a string or `null`, `at` when the status was reached (ms).
public enum CommandStatusMessage {
    /// The message of a stored command's current status.
    public static func encode(_ record: CommandRecord, hubID: String) -> [UInt8] {
        encode(
            commandID: record.commandID, hubID: hubID, device: record.device, status: record.status.rawValue,
            result: record.result, message: record.message, at: record.updatedAt)
    }

    /// The `rejected` answer to a command the hub refused (not stored): `message` is exactly the
    /// contract's reason (`queue full`, `invalid command`, `unknown device`), so cloud code can
    /// compare it; the plain-words detail is in `result` as `{"detail": "…"}` (`null` without one).
    /// `commandId` is `null` when it could not be read.
    public static func encode(_ rejection: CommandRejection, device: DeviceID, hubID: String, at: Int64) -> [UInt8] {
        var detail: [UInt8]?
        if let text = rejection.detail {
            var json = JSONText(capacity: 32 + text.utf8.count)
            json.field("detail", string: text)
            detail = json.finish()
        }
        return encode(
            commandID: rejection.commandID, hubID: hubID, device: device, status: CommandStatus.rejected.rawValue,
            result: detail, message: rejection.reason.rawValue, at: at)
    }

    public static func encode(
        commandID: String?, hubID: String, device: DeviceID, status: String, result: [UInt8]?, message: String?, at: Int64
    ) -> [UInt8] {
        var json = JSONText(capacity: 160 + (result?.count ?? 4) + (message?.utf8.count ?? 4))
        json.field("commandId", string: commandID)
        json.field("hubId", string: hubID)
        json.field("deviceId", string: device.rawValue)
        json.field("status", string: status)
        if let result { json.field("result", rawJSON: result) } else { json.null("result") }
        json.field("message", string: message)
        json.field("at", int: at)
        return json.finish()
    }
}
