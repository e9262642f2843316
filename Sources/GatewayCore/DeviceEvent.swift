/// A validated device event or telemetry record (CONTRACTS.md §1):
/// `{"eventId": "<1–64 chars>", "type": "<string>", "timestamp": <ms>, "data": <any JSON>}`.
///
/// `data` is kept as the exact bytes the device sent, so what reaches the cloud is what the
/// device wrote. `timestamp` and `data` may be absent: a missing timestamp becomes `null`
/// upstream, a missing `data` becomes `null`.
public struct DeviceEvent: Sendable, Equatable {
    public static let maxEventIDLength = 64
    public static let maxTypeLength = 128

    public var device: DeviceID
    public var eventID: String
    public var type: String
    /// Milliseconds since the epoch as the device reported them, if it did.
    public var timestamp: Int64?
    /// The raw JSON bytes of `data` (`null` when absent).
    public var data: [UInt8]

    public init(device: DeviceID, eventID: String, type: String, timestamp: Int64?, data: [UInt8]) {
        self.device = device
        self.eventID = eventID
        self.type = type
        self.timestamp = timestamp
        self.data = data
    }

    /// A payload that could not be accepted. `eventID` is set when it could be read, so the ack
    /// can name the event.
    public struct Rejection: Error, Sendable, Equatable {
        public var reason: RejectReason
        public var eventID: String?
        /// Detail for the log (never sent to the device).
        public var detail: String

        public init(reason: RejectReason, eventID: String?, detail: String) {
            self.reason = reason
            self.eventID = eventID
            self.detail = detail
        }
    }

    /// Validates a payload received on `device/{id}/event` or `device/{id}/telemetry`.
    public static func parse(
        device: DeviceID,
        payload: [UInt8],
        maxPayloadBytes: Int
    ) -> Result<DeviceEvent, Rejection> {
        guard payload.count <= maxPayloadBytes else {
            // Only the part within the limit is read: naming the event costs no more than
            // accepting one would have.
            return .failure(Rejection(
                reason: .payloadTooLarge, eventID: leadingEventID(Array(payload.prefix(maxPayloadBytes))),
                detail: "\(payload.count) bytes, limit \(maxPayloadBytes)"))
        }
        let members: [JSONScanner.Member]
        do {
            guard let found = try JSONScanner.topLevelMembers(of: payload) else {
                return .failure(Rejection(reason: .notAnObject, eventID: nil, detail: "top-level value is not an object"))
            }
            members = found
        } catch {
            return .failure(Rejection(
                reason: .invalidJSON, eventID: leadingEventID(payload), detail: "\(error.message) at byte \(error.offset)"))
        }

        // Later duplicates of a key win, as in most JSON decoders.
        var byKey: [String: JSONScanner.Member] = [:]
        for member in members { byKey[member.key] = member }

        guard let idMember = byKey["eventId"], idMember.kind == .string,
            let eventID = JSONScanner.decodeString(payload, range: idMember.range)
        else {
            return .failure(Rejection(reason: .invalidEventID, eventID: nil, detail: "eventId must be a string"))
        }
        guard isAcceptableText(eventID, maxLength: maxEventIDLength) else {
            return .failure(Rejection(
                reason: .invalidEventID, eventID: nil,
                detail: "eventId must be 1–\(maxEventIDLength) characters without control characters"))
        }
        guard let typeMember = byKey["type"], typeMember.kind == .string,
            let type = JSONScanner.decodeString(payload, range: typeMember.range),
            isAcceptableText(type, maxLength: maxTypeLength)
        else {
            return .failure(Rejection(
                reason: .invalidType, eventID: eventID,
                detail: "type must be a string of 1–\(maxTypeLength) characters"))
        }
        var timestamp: Int64? = nil
        if let member = byKey["timestamp"], member.kind != .null {
            guard member.kind == .number, let value = parseTimestamp(payload[member.range]) else {
                return .failure(Rejection(
                    reason: .invalidTimestamp, eventID: eventID,
                    detail: "timestamp must be a non-negative integer (ms since epoch)"))
            }
            timestamp = value
        }
        let data: [UInt8] = byKey["data"].map { Array(payload[$0.range]) } ?? Array("null".utf8)
        return .success(DeviceEvent(device: device, eventID: eventID, type: type, timestamp: timestamp, data: data))
    }

    /// The `eventId` of a payload that cannot be taken, when a valid one stands at its start
    /// (CONTRACTS.md §1: a `rejected` ack names the event whenever it can).
    private static func leadingEventID(_ bytes: [UInt8]) -> String? {
        guard let eventID = JSONScanner.leadingString(named: "eventId", in: bytes),
            isAcceptableText(eventID, maxLength: maxEventIDLength)
        else { return nil }
        return eventID
    }

    private static func isAcceptableText(_ text: String, maxLength: Int) -> Bool {
        let scalars = text.unicodeScalars
        guard !scalars.isEmpty, scalars.count <= maxLength else { return false }
        return !scalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    /// Accepts integer milliseconds; `1.7e12`-style or fractional values are refused.
    private static func parseTimestamp(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }
}
