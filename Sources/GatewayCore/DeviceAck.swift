/// The acknowledgement sent to a device on `device/{id}/ack` (CONTRACTS.md §1).
public struct DeviceAck: Sendable, Equatable {
    public enum Status: String, Sendable {
        /// Durably committed to the outbox.
        case stored
        /// This `(device, eventId)` was stored before; not stored again.
        case duplicate
        /// Not accepted; see ``DeviceAck/reason``.
        case rejected
    }

    public var device: DeviceID
    /// `nil` when the payload could not be read far enough to find it (sent as JSON `null`).
    public var eventID: String?
    public var status: Status
    public var reason: RejectReason?

    public init(device: DeviceID, eventID: String?, status: Status, reason: RejectReason? = nil) {
        self.device = device
        self.eventID = eventID
        self.status = status
        self.reason = reason
    }

    /// `{"eventId": "...", "status": "...", "reason": "..."}`; `reason` only when rejected.
    public var payload: [UInt8] {
        var json = JSONText(capacity: 96)
        json.field("eventId", string: eventID)
        json.field("status", string: status.rawValue)
        if let reason { json.field("reason", string: reason.rawValue) }
        return json.finish()
    }
}
