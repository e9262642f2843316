import Foundation

/// One message on `device/{id}/audio` (CONTRACTS.md §1). Byte 0 is the kind:
/// - `0x01` start: UTF-8 JSON `{"session", "codec", "sampleRate", "channels", "language", "userId"?}`;
/// - `0x02` frame: 16-byte session UUID, 4-byte big-endian sequence number (from 0), then one Opus
///   packet or raw PCM bytes;
/// - `0x03` end: UTF-8 JSON `{"session", "lastSeq"}`.
public enum AudioMessage: Sendable, Equatable {
    case start(AudioStart)
    case frame(session: UUID, sequence: UInt32, payload: [UInt8])
    case end(session: UUID, lastSequence: UInt32)

    /// What a session's start announces.
    public struct AudioStart: Sendable, Equatable {
        public enum Codec: String, Sendable, CaseIterable {
            case opus
            case pcm = "pcm_s16le"
        }

        public var session: UUID
        public var codec: Codec
        public var sampleRate: Int
        public var channels: Int
        public var language: String
        /// The speaker, when the device names one (else the device's registered user).
        public var userID: String?

        public init(session: UUID, codec: Codec, sampleRate: Int, channels: Int, language: String, userID: String? = nil) {
            self.session = session
            self.codec = codec
            self.sampleRate = sampleRate
            self.channels = channels
            self.language = language
            self.userID = userID
        }
    }

    /// Why an audio message was refused (logged and counted; a frame is never acked).
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Sample rates a start may announce (Opus's and common PCM rates).
    public static let sampleRates: Set<Int> = [8000, 12000, 16000, 24000, 44100, 48000]

    /// Parses one message, strictly: unknown kinds, short frames, malformed JSON, unknown codecs
    /// and out-of-range numbers are refused.
    public static func parse(_ bytes: [UInt8]) -> Result<AudioMessage, ParseError> {
        guard let kind = bytes.first else { return .failure(ParseError("empty audio message")) }
        switch kind {
        case 0x01:
            return parseStart(Array(bytes.dropFirst()))
        case 0x02:
            guard bytes.count >= 21 else { return .failure(ParseError("frame of \(bytes.count) bytes; at least 21 expected")) }
            let session = bytes[1..<17].withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
            let sequence = bytes[17..<21].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return .success(.frame(session: session, sequence: sequence, payload: Array(bytes[21...])))
        case 0x03:
            return parseEnd(Array(bytes.dropFirst()))
        default:
            return .failure(ParseError("unknown audio message kind 0x\(String(kind, radix: 16))"))
        }
    }

    /// Encodes a message in the wire format (what a device sends; used by tests and tools).
    public var bytes: [UInt8] {
        switch self {
        case .start(let start):
            var json = JSONText(capacity: 160)
            json.field("session", string: start.session.uuidString.lowercased())
            json.field("codec", string: start.codec.rawValue)
            json.field("sampleRate", int: Int64(start.sampleRate))
            json.field("channels", int: Int64(start.channels))
            json.field("language", string: start.language)
            if let userID = start.userID { json.field("userId", string: userID) }
            return [0x01] + json.finish()
        case .frame(let session, let sequence, let payload):
            let uuid = withUnsafeBytes(of: session.uuid) { Array($0) }
            return [0x02] + uuid + [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: sequence >> $0) } + payload
        case .end(let session, let lastSequence):
            var json = JSONText(capacity: 80)
            json.field("session", string: session.uuidString.lowercased())
            json.field("lastSeq", int: Int64(lastSequence))
            return [0x03] + json.finish()
        }
    }

    private static func members(_ json: [UInt8]) -> Result<[String: (JSONScanner.Member)], ParseError> {
        do {
            guard let members = try JSONScanner.topLevelMembers(of: json) else {
                return .failure(ParseError("not a JSON object"))
            }
            var byKey: [String: JSONScanner.Member] = [:]
            for member in members { byKey[member.key] = member }
            return .success(byKey)
        } catch {
            return .failure(ParseError("invalid JSON: \(error.message) at byte \(error.offset)"))
        }
    }

    private static func string(_ json: [UInt8], _ members: [String: JSONScanner.Member], _ key: String) -> String? {
        guard let member = members[key], member.kind == .string else { return nil }
        return JSONScanner.decodeString(json, range: member.range)
    }

    private static func integer(_ json: [UInt8], _ members: [String: JSONScanner.Member], _ key: String) -> Int? {
        guard let member = members[key], member.kind == .number else { return nil }
        let digits = json[member.range]
        guard !digits.isEmpty, digits.count <= 10, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(String(decoding: digits, as: UTF8.self))
    }

    private static func session(_ json: [UInt8], _ members: [String: JSONScanner.Member]) -> UUID? {
        string(json, members, "session").flatMap(UUID.init(uuidString:))
    }

    private static func parseStart(_ json: [UInt8]) -> Result<AudioMessage, ParseError> {
        let members: [String: JSONScanner.Member]
        switch Self.members(json) {
        case .success(let found): members = found
        case .failure(let error): return .failure(error)
        }
        guard let session = session(json, members) else { return .failure(ParseError("start: session must be a UUID")) }
        guard let codec = string(json, members, "codec").flatMap(AudioStart.Codec.init(rawValue:)) else {
            return .failure(ParseError("start: codec must be \"opus\" or \"pcm_s16le\""))
        }
        guard let sampleRate = integer(json, members, "sampleRate"), sampleRates.contains(sampleRate) else {
            return .failure(ParseError("start: sampleRate must be one of \(sampleRates.sorted())"))
        }
        guard let channels = integer(json, members, "channels"), (1...2).contains(channels) else {
            return .failure(ParseError("start: channels must be 1 or 2"))
        }
        guard let language = string(json, members, "language"), (1...35).contains(language.count),
            language.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic || $0 == "-" || ("0"..."9").contains($0) })
        else { return .failure(ParseError("start: language must be a language tag such as en-US")) }
        var userID: String?
        if let member = members["userId"], member.kind != .null {
            guard let value = string(json, members, "userId"), (1...64).contains(value.count),
                !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
            else { return .failure(ParseError("start: userId must be 1–64 characters")) }
            userID = value
        }
        return .success(.start(AudioStart(
            session: session, codec: codec, sampleRate: sampleRate, channels: channels, language: language, userID: userID)))
    }

    private static func parseEnd(_ json: [UInt8]) -> Result<AudioMessage, ParseError> {
        let members: [String: JSONScanner.Member]
        switch Self.members(json) {
        case .success(let found): members = found
        case .failure(let error): return .failure(error)
        }
        guard let session = session(json, members) else { return .failure(ParseError("end: session must be a UUID")) }
        guard let lastSeq = integer(json, members, "lastSeq"), let last = UInt32(exactly: lastSeq) else {
            return .failure(ParseError("end: lastSeq must be a non-negative integer"))
        }
        return .success(.end(session: session, lastSequence: last))
    }
}
