/// Why the gateway refused a device message. The `rawValue` is the `reason` text of a
/// `rejected` ack (CONTRACTS.md §1); ``counterName`` names the counter it is counted under.
public enum RejectReason: String, Sendable, CaseIterable, Codable {
    case invalidJSON = "invalid json"
    case notAnObject = "not a json object"
    case invalidEventID = "invalid eventId"
    case invalidType = "invalid type"
    case invalidTimestamp = "invalid timestamp"
    case payloadTooLarge = "payload too large"
    case storeFull = "store full"
    /// `devices.requireRegistration` is on and the device has no registration on this hub.
    case unregistered = "unregistered device"
    /// The topic names the hub's own id (`hub.id`), which no device may use.
    case reservedDevice = "reserved device id"

    /// A stable identifier without spaces, for counters and log metadata.
    public var counterName: String {
        switch self {
        case .invalidJSON: "invalid_json"
        case .notAnObject: "not_an_object"
        case .invalidEventID: "invalid_event_id"
        case .invalidType: "invalid_type"
        case .invalidTimestamp: "invalid_timestamp"
        case .payloadTooLarge: "payload_too_large"
        case .storeFull: "store_full"
        case .unregistered: "unregistered_device"
        case .reservedDevice: "reserved_device_id"
        }
    }
}
