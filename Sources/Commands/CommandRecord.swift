import GatewayCore

/// Identifies a command: the cloud's `commandId` is unique per device (CONTRACTS.md §6).
public struct CommandKey: Hashable, Sendable, CustomStringConvertible {
    public var device: DeviceID
    public var commandID: String

    public init(device: DeviceID, commandID: String) {
        self.device = device
        self.commandID = commandID
    }

    public var description: String { "\(device)/\(commandID)" }
}

/// A stored command with its state, as the store holds it.
public struct CommandRecord: Sendable, Equatable {
    public var device: DeviceID
    public var commandID: String
    public var name: String
    /// Raw JSON of `params` as the cloud sent it; nil when absent or `null`.
    public var params: [UInt8]?
    /// Ms since the epoch; nil: never expires.
    public var expiresAt: Int64?
    public var receivedAt: Int64
    public var status: CommandStatus
    /// Raw JSON of the device's `result`; nil when none.
    public var result: [UInt8]?
    /// The device's `message`, or the hub's (`cancelled`).
    public var message: String?
    /// When ``status`` last changed (ms since the epoch): the `at` of the status message.
    public var updatedAt: Int64
    /// How many times it was published to the device.
    public var attempts: Int
    public var lastSentAt: Int64?
    /// Queue order: increasing in the order commands were stored (over all devices, so also per
    /// device).
    public var seq: Int64
    /// Order of the last state change over all commands: the order status messages go upstream.
    public var changeSeq: Int64
    /// The last status whose upstream message the caller confirmed it stored in the outbox.
    public var reportedStatus: CommandStatus?

    public init(
        device: DeviceID, commandID: String, name: String, params: [UInt8]?, expiresAt: Int64?, receivedAt: Int64,
        status: CommandStatus, result: [UInt8]?, message: String?, updatedAt: Int64, attempts: Int, lastSentAt: Int64?,
        seq: Int64, changeSeq: Int64, reportedStatus: CommandStatus?
    ) {
        self.device = device
        self.commandID = commandID
        self.name = name
        self.params = params
        self.expiresAt = expiresAt
        self.receivedAt = receivedAt
        self.status = status
        self.result = result
        self.message = message
        self.updatedAt = updatedAt
        self.attempts = attempts
        self.lastSentAt = lastSentAt
        self.seq = seq
        self.changeSeq = changeSeq
        self.reportedStatus = reportedStatus
    }

    public var key: CommandKey { CommandKey(device: device, commandID: commandID) }

    /// Sent to the device and neither accepted nor finished.
    public var isInFlight: Bool { status == .queued && attempts > 0 }

    /// Holds a place of `commands.inflightPerDevice`: sent (or accepted) and not finished.
    var holdsInflightPlace: Bool { !status.isFinal && (attempts > 0 || status == .delivered) }

    /// Its upstream message for the current status is not confirmed yet.
    public var isUnreported: Bool { reportedStatus != status }

    /// True when `nowMs` is at or after its expiry.
    public func isExpired(at nowMs: Int64) -> Bool {
        expiresAt.map { nowMs >= $0 } ?? false
    }
}
