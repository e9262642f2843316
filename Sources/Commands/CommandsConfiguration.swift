/// Cloud → device commands (`commands.*`, CONTRACTS.md §6): the limits of the queue and of the
/// messages it takes. The lead's configuration reader fills it from YAML/environment; every field
/// is one key with the default written here.
public struct CommandsConfiguration: Sendable, Equatable {
    /// `commands.enabled`: subscribe to commands upstream and deliver them.
    public var enabled = true
    /// `commands.topic`: the upstream subscription (`{hubId}` is replaced; `+` is the device id).
    public var topic = "hubs/{hubId}/commands/+"
    /// `commands.maxPayloadBytes`: a cloud command or a device result longer than this is refused
    /// before it is parsed.
    public var maxPayloadBytes = 8192
    /// `commands.maxPerDevice`: unfinished commands one device may have; one more is `rejected`,
    /// reason `queue full`.
    public var maxPerDevice = 100
    /// `commands.maxTotal`: unfinished commands of all devices together (bounds the memory the
    /// queue keeps: at most `maxTotal` × `maxPayloadBytes` of parameters, 16 MiB with the
    /// defaults); one more is `rejected`, reason `queue full`.
    public var maxTotal = 2000
    /// `commands.inflightPerDevice`: commands sent to a device and not finished, at once.
    public var inflightPerDevice = 1
    /// `commands.ackTimeoutSeconds`: a sent command without `accepted` or a final status is sent
    /// again (same `commandId`) after this long.
    public var ackTimeoutSeconds = 30
    /// `commands.retentionSeconds`: finished commands are kept this long (for the operator and to
    /// answer a repeat with its status), and removed only once their final status went upstream.
    public var retentionSeconds = 86400
    /// `commands.maxTtlSeconds`: the furthest ahead a command may expire (`ttlSeconds` or
    /// `expiresAt`); a command without either never expires.
    public var maxTtlSeconds = 2_592_000

    public init() {}

    /// What ``CloudCommand/parse(device:payload:nowMs:limits:)`` and
    /// ``DeviceCommandResult/parse(payload:limits:)`` check against.
    public var limits: CommandLimits {
        CommandLimits(maxPayloadBytes: maxPayloadBytes, maxTtlSeconds: maxTtlSeconds)
    }
}

/// The limits of parsing (a part of ``CommandsConfiguration``).
public struct CommandLimits: Sendable, Equatable {
    public var maxPayloadBytes: Int
    public var maxTtlSeconds: Int

    public init(maxPayloadBytes: Int = 8192, maxTtlSeconds: Int = 2_592_000) {
        self.maxPayloadBytes = maxPayloadBytes
        self.maxTtlSeconds = maxTtlSeconds
    }
}
