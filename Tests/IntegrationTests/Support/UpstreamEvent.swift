import Foundation

/// An event as the daemon published it upstream (CONTRACTS.md section 2).
struct UpstreamEvent: CustomStringConvertible {
    static let fields: Set<String> = ["eventId", "hubId", "deviceId", "type", "key", "timestamp", "receivedAt", "data"]

    let topic: String
    let text: String
    let object: [String: Any]?

    init(_ message: RecordedMessage) {
        topic = message.topic
        text = message.text
        object = message.json
    }

    var eventId: String? { object?["eventId"] as? String }
    var deviceId: String? { object?["deviceId"] as? String }
    var hubId: String? { object?["hubId"] as? String }
    var type: String? { object?["type"] as? String }
    var key: String? { object?["key"] as? String }
    var timestamp: Int? { JSON.int(object?["timestamp"]) }
    var receivedAt: Any? { object?["receivedAt"] }
    var data: Any? { object?["data"] }

    /// Differences from what the device sent, for an event published by hub `hubId`; empty when it matches.
    func problems(comparedTo sent: DeviceEvent, hubId expectedHub: String) -> [String] {
        guard let object else { return ["not a JSON object: \(text)"] }
        var problems: [String] = []
        let missing = Self.fields.subtracting(object.keys)
        if !missing.isEmpty { problems.append("missing \(missing.sorted())") }
        let expectedTopic = "hubs/\(expectedHub)/events/\(sent.deviceId)"
        if topic != expectedTopic { problems.append("topic \(topic), expected \(expectedTopic)") }
        if eventId != sent.eventId { problems.append("eventId \(eventId ?? "nil")") }
        if hubId != expectedHub { problems.append("hubId \(hubId ?? "nil")") }
        if deviceId != sent.deviceId { problems.append("deviceId \(deviceId ?? "nil")") }
        if key != sent.deviceId { problems.append("key \(key ?? "nil"), expected the device id") }
        if type != sent.type { problems.append("type \(type ?? "nil")") }
        if timestamp != sent.timestamp { problems.append("timestamp \(JSON.canonical(object["timestamp"])), sent \(sent.timestamp)") }
        if receivedAt == nil || receivedAt is NSNull { problems.append("receivedAt missing or null") }
        // Both sides decoded and re-encoded, so only the values count, not number or key formatting.
        if JSON.canonical(data) != JSON.canonical(JSON.value(sent.dataJSON)) {
            problems.append("data \(JSON.canonical(data)), sent \(sent.dataJSON)")
        }
        return problems
    }

    var description: String { "\(topic) \(text)" }
}
