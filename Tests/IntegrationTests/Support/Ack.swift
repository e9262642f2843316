import Foundation

/// A `device/{id}/ack` message as the daemon sent it: `{"eventId", "status", "reason"?}`.
struct Ack: CustomStringConvertible {
    static let statuses: Set<String> = ["stored", "duplicate", "rejected"]

    let topic: String
    let text: String
    let object: [String: Any]?

    init(_ message: RecordedMessage) {
        topic = message.topic
        text = message.text
        object = message.json
    }

    /// The device id from the topic.
    var deviceId: String? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        return levels.count == 3 && levels[0] == "device" && levels[2] == "ack" ? String(levels[1]) : nil
    }

    var eventId: String? { object?["eventId"] as? String }
    /// `eventId` is present and JSON null (the daemon could not read it).
    var eventIdIsNull: Bool { object?["eventId"] is NSNull }
    var status: String? { object?["status"] as? String }
    var reason: String? { object?["reason"] as? String }

    var isStored: Bool { status == "stored" }

    /// What is wrong with the ack's shape (CONTRACTS.md section 1); empty when it is right.
    var shapeProblems: [String] {
        guard let object else { return ["not a JSON object: \(text)"] }
        var problems: [String] = []
        let unexpected = Set(object.keys).subtracting(["eventId", "status", "reason"])
        if !unexpected.isEmpty { problems.append("unexpected keys \(unexpected.sorted())") }
        if object["eventId"] == nil { problems.append("no eventId key") }
        if !(object["eventId"] is String || object["eventId"] is NSNull) { problems.append("eventId neither string nor null") }
        guard let status else { return problems + ["no status string"] }
        if !Self.statuses.contains(status) { problems.append("unknown status \(status)") }
        if status == "rejected", (reason ?? "").isEmpty { problems.append("rejected without reason") }
        if status != "rejected", object["reason"] != nil, !(object["reason"] is NSNull) {
            problems.append("reason on a \(status) ack")
        }
        return problems
    }

    var description: String { "\(topic) \(text)" }
}
