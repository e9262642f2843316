/// The JSON object published upstream for each event (CONTRACTS.md §2):
/// `{"eventId", "hubId", "deviceId", "type", "key", "timestamp", "receivedAt", "data"}`.
public enum UpstreamEnvelope {
    /// Encodes an event. `key` is the ordering key: the device id for device events.
    public static func encode(
        _ event: DeviceEvent,
        hubID: String,
        key: String? = nil,
        receivedAt: Int64
    ) -> [UInt8] {
        var json = JSONText(capacity: 160 + event.data.count)
        json.field("eventId", string: event.eventID)
        json.field("hubId", string: hubID)
        json.field("deviceId", string: event.device.rawValue)
        json.field("type", string: event.type)
        json.field("key", string: key ?? event.device.rawValue)
        json.field("timestamp", int: event.timestamp)
        json.field("receivedAt", int: receivedAt)
        json.field("data", rawJSON: event.data)
        return json.finish()
    }
}
