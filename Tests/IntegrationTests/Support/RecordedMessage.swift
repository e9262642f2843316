import Foundation

/// One message a `TopicRecorder` received.
struct RecordedMessage: Sendable, CustomStringConvertible {
    let topic: String
    let payload: Data
    /// The QoS it arrived at, from a recorder that notes it (`recordsQoS`); else nil.
    var qos: Int? = nil

    var text: String { String(decoding: payload, as: UTF8.self) }

    /// The payload as a JSON object, or nil.
    var json: [String: Any]? { JSON.object(payload) }

    /// The second topic level: the device id in `device/{id}/ack`.
    var deviceIdFromDeviceTopic: String? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        return levels.count >= 3 ? String(levels[1]) : nil
    }

    var description: String { "\(topic) \(text)" }
}
