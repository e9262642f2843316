import GatewayCore

/// Why a reply could not be sent to a device.
public struct DeviceReplyError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Everything the gateway sends back to devices: acknowledgements of events
/// (`device/{id}/ack`) and responses (`device/{id}/response`: dialog answers, registration
/// results, errors). The topic and the connection it goes out on are the device edge's business.
///
/// Sending does not wait: it hands the reply to the connection (acks at `devices.ackQos`, default
/// 1; responses at QoS 1) or fails at once when the connection to the device broker is down.
/// Callers decide whether to try again. An ack lost on the way (QoS 0, or a device not subscribed
/// at the moment) costs the device one re-send, which dedup answers `duplicate` (CONTRACTS.md §1).
public protocol DeviceReplies: Sendable {
    func send(_ ack: DeviceAck) throws(DeviceReplyError)
    func send(_ response: DeviceResponse) throws(DeviceReplyError)
}

/// What goes to a device for cloud commands and its shadow (CONTRACTS.md §6, §7).
public enum DownlinkMessage: Sendable, Equatable {
    /// `device/{id}/command`.
    case command
    /// `device/{id}/shadow/delta`.
    case shadowDelta
    /// `device/{id}/shadow`: the whole document, in answer to `shadow/get`.
    case shadowDocument
}

/// Sends commands and shadow messages to devices. Like ``DeviceReplies`` it does not wait: the
/// message is handed to the connection (QoS 1) or refused at once when it is down.
public protocol DeviceDownlink: Sendable {
    func send(_ message: DownlinkMessage, to device: DeviceID, payload: [UInt8]) throws(DeviceReplyError)
}
