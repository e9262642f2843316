import Foundation

/// One Wyoming event: a type, a JSON object of data and an optional binary payload (PCM audio).
///
/// On the wire (the `wyoming` reference package, 1.x): a JSON header line `{"type", "data_length"?,
/// "payload_length"?, "version"}` and `\n`, then `data_length` bytes of JSON data, then `payload_length` bytes
/// of payload. ``encoded()`` writes that form; ``WyomingDecoder`` reads it back.
public struct WyomingEvent: Sendable, Hashable {
    public var type: String
    public var data: [String: WyomingJSON]
    public var payload: [UInt8]

    /// The protocol version this client writes into each header (the reference package's).
    public static let protocolVersion = "1.10.2"

    public init(type: String, data: [String: WyomingJSON] = [:], payload: [UInt8] = []) {
        self.type = type
        self.data = data
        self.payload = payload
    }

    /// The event as bytes: the header line, the data (when not empty) and the payload (when not empty).
    ///
    /// ```swift
    /// let bytes = try WyomingEvent(type: "describe").encoded()  // {"type":"describe","version":"1.10.2"}\n
    /// ```
    public func encoded() throws(WyomingError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var header: [String: WyomingJSON] = ["type": .string(type), "version": .string(Self.protocolVersion)]
        var dataBytes: [UInt8] = []
        if !data.isEmpty {
            do {
                dataBytes = Array(try encoder.encode(data))
            } catch {
                throw WyomingError(.invalidEvent, "event \(type): its data cannot be written as JSON (\(error))")
            }
            header["data_length"] = .int(dataBytes.count)
        }
        if !payload.isEmpty { header["payload_length"] = .int(payload.count) }
        var bytes: [UInt8]
        do {
            bytes = Array(try encoder.encode(header))
        } catch {
            throw WyomingError(.invalidEvent, "event \(type): its header cannot be written as JSON (\(error))")
        }
        bytes.reserveCapacity(bytes.count + 1 + dataBytes.count + payload.count)
        bytes.append(UInt8(ascii: "\n"))
        bytes += dataBytes
        bytes += payload
        return bytes
    }
}
