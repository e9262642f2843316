import Foundation

/// Reads Wyoming events out of bytes as they arrive, in any slicing: append what the socket gave, then take
/// events until `next()` says it needs more.
///
/// Every length is checked before it is waited for: the header line may be at most `maxHeaderBytes` (checked
/// while it is still incomplete), `data_length` and `payload_length` must be non-negative integers within
/// `maxDataBytes` / `maxPayloadBytes`. So the bytes held never exceed one event's limits plus one append.
/// After an error the stream is out of step: the decoder keeps failing and the connection must be dropped.
public struct WyomingDecoder: Sendable {
    public let limits: WyomingLimits
    private var buffer: [UInt8] = []
    private var start = 0
    /// The header of the event whose data and payload are still arriving.
    private var pending: Pending?
    private var failure: WyomingError?

    private struct Pending: Sendable {
        var type: String
        var data: [String: WyomingJSON]
        var dataLength: Int
        var payloadLength: Int
    }

    public init(limits: WyomingLimits = WyomingLimits()) {
        self.limits = limits
    }

    /// The bytes held and not yet part of a returned event.
    public var bufferedBytes: Int { buffer.count - start }

    /// Whether part of an event (a header line, or data and payload still owed) has been received.
    public var isInsideEvent: Bool { pending != nil || bufferedBytes > 0 }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete event, or nil when more bytes are needed.
    public mutating func next() throws(WyomingError) -> WyomingEvent? {
        if let failure { throw failure }
        do {
            return try decodeNext()
        } catch {
            failure = error
            throw error
        }
    }

    private mutating func decodeNext() throws(WyomingError) -> WyomingEvent? {
        if pending == nil {
            guard let header = try takeHeaderLine() else { return nil }
            pending = try Self.parseHeader(header, limits: limits)
        }
        guard let event = pending else { return nil }
        guard bufferedBytes >= event.dataLength + event.payloadLength else { return nil }

        var data = event.data
        if event.dataLength > 0 {
            let bytes = buffer[start..<(start + event.dataLength)]
            guard let object = (try? JSONDecoder().decode(WyomingJSON.self, from: Data(bytes)))?.object else {
                throw WyomingError(.invalidData, "event \(event.type): its \(event.dataLength) data bytes are not a JSON object")
            }
            data.merge(object) { _, new in new }
            start += event.dataLength
        }
        let payload = Array(buffer[start..<(start + event.payloadLength)])
        start += event.payloadLength
        pending = nil
        return WyomingEvent(type: event.type, data: data, payload: payload)
    }

    /// The header line without its `\n`, or nil while it is incomplete and still within the limit.
    private mutating func takeHeaderLine() throws(WyomingError) -> ArraySlice<UInt8>? {
        let searchEnd = min(buffer.count, start + limits.maxHeaderBytes)
        guard let newline = buffer[start..<searchEnd].firstIndex(of: UInt8(ascii: "\n")) else {
            if bufferedBytes >= limits.maxHeaderBytes {
                throw WyomingError(.headerTooLong, "a header line longer than \(limits.maxHeaderBytes) bytes (limit maxHeaderBytes)")
            }
            return nil
        }
        let line = buffer[start..<newline]
        start = newline + 1
        return line
    }

    private static func parseHeader(_ line: ArraySlice<UInt8>, limits: WyomingLimits) throws(WyomingError) -> Pending {
        let header: [String: WyomingJSON]
        do {
            guard let object = try JSONDecoder().decode(WyomingJSON.self, from: Data(line)).object else {
                throw WyomingError(.invalidHeader, "the header line is JSON but not an object")
            }
            header = object
        } catch let error as WyomingError {
            throw error
        } catch {
            throw WyomingError(.invalidHeader, "the header line is not JSON (\(line.count) bytes)")
        }
        guard let type = header["type"]?.string else {
            throw WyomingError(.invalidHeader, "the header has no string \"type\"")
        }
        var data: [String: WyomingJSON] = [:]
        switch header["data"] {
        case nil, .null: break
        case .object(let object): data = object
        default: throw WyomingError(.invalidData, "event \(type): \"data\" in the header is not a JSON object")
        }
        let dataLength = try length("data_length", of: type, in: header, limit: limits.maxDataBytes, limitName: "maxDataBytes")
        let payloadLength = try length("payload_length", of: type, in: header, limit: limits.maxPayloadBytes, limitName: "maxPayloadBytes")
        return Pending(type: type, data: data, dataLength: dataLength, payloadLength: payloadLength)
    }

    private static func length(
        _ key: String, of type: String, in header: [String: WyomingJSON], limit: Int, limitName: String
    ) throws(WyomingError) -> Int {
        switch header[key] {
        case nil, .null:
            return 0
        case .int(let value):
            if value < 0 { throw WyomingError(.invalidLength, "event \(type): \(key) \(value) is negative") }
            if value > limit {
                throw WyomingError(.invalidLength, "event \(type): \(key) \(value) is over the limit of \(limit) bytes (\(limitName))")
            }
            return value
        case .double(let value):
            throw WyomingError(.invalidLength, "event \(type): \(key) \(value) is not an integer (or out of range)")
        default:
            throw WyomingError(.invalidLength, "event \(type): \(key) is not a number")
        }
    }
}
