import Foundation

/// One event a simulated device sends on `device/{id}/event` (CONTRACTS.md section 1).
struct DeviceEvent: Sendable {
    let deviceId: String
    let eventId: String
    /// Position in the device's sending order, from 0.
    let seq: Int
    let type: String
    let timestamp: Int
    /// The `data` member as compact JSON.
    let dataJSON: String

    init(deviceId: String, seq: Int, eventId: String? = nil, type: String = "sensor.reading", padding: Int = 0) {
        self.deviceId = deviceId
        self.seq = seq
        self.eventId = eventId ?? "\(deviceId)-\(seq)"
        self.type = type
        // A fixed base keeps payloads reproducible; seq keeps timestamps increasing per device.
        timestamp = 1_760_000_000_000 + seq
        var data: [String: Any] = [
            "seq": seq,
            "reading": 20.5 + Double(seq),
            "tags": ["a", "b"],
            "ok": seq % 2 == 0,
            "nested": ["unit": "°C", "note": "ü \"quoted\" / slash"],
            "missing": NSNull(),
        ]
        if padding > 0 { data["pad"] = String(repeating: "x", count: padding) }
        dataJSON = JSON.line(data)
    }

    /// The JSON payload, one line.
    var payload: String {
        JSON.line([
            "eventId": eventId,
            "type": type,
            "timestamp": timestamp,
            "data": JSON.value(dataJSON)!,
        ] as [String: Any])
    }

    /// `count` events of one device, seq 0..<count.
    static func series(deviceId: String, count: Int, from start: Int = 0, padding: Int = 0) -> [DeviceEvent] {
        (start..<(start + count)).map { DeviceEvent(deviceId: deviceId, seq: $0, padding: padding) }
    }
}
