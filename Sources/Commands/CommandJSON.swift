import GatewayCore

/// What cloud commands and device results share: reading the members of a top-level object once,
/// refusing duplicates, and the checks of ids and numbers.
enum CommandJSON {
    static let maxCommandIDLength = 64
    static let maxNameLength = 128

    enum Failure: Error {
        case tooLarge(Int)
        case invalidJSON(String)
        case notAnObject
        case duplicateKey(String)
    }

    /// The members of the payload's top-level object by key, after the size check.
    static func members(_ payload: [UInt8], maxBytes: Int) -> Result<[String: JSONScanner.Member], Failure> {
        guard payload.count <= maxBytes else { return .failure(.tooLarge(payload.count)) }
        let members: [JSONScanner.Member]
        do {
            guard let found = try JSONScanner.topLevelMembers(of: payload) else { return .failure(.notAnObject) }
            members = found
        } catch {
            return .failure(.invalidJSON("\(error.message) at byte \(error.offset)"))
        }
        var byKey: [String: JSONScanner.Member] = [:]
        byKey.reserveCapacity(members.count)
        for member in members {
            // Two values for one key: which one a reader takes differs between JSON libraries, so
            // the hub and the cloud could disagree about what was asked.
            guard byKey.updateValue(member, forKey: member.key) == nil else { return .failure(.duplicateKey(member.key)) }
        }
        return .success(byKey)
    }

    /// A `commandId` at the start of a payload that cannot be taken (too large, broken further
    /// on), read no further than `maxBytes`, so the answer can name the command.
    static func leadingCommandID(_ payload: [UInt8], maxBytes: Int) -> String? {
        let head = payload.count > maxBytes ? Array(payload.prefix(max(0, maxBytes))) : payload
        guard let id = JSONScanner.leadingString(named: "commandId", in: head), isAcceptableText(id, maxLength: maxCommandIDLength)
        else { return nil }
        return id
    }

    /// 1…`maxLength` Unicode scalars, none of them a control character (C0, DEL, C1).
    static func isAcceptableText(_ text: String, maxLength: Int) -> Bool {
        let scalars = text.unicodeScalars
        guard !scalars.isEmpty else { return false }
        var count = 0
        for scalar in scalars {
            count += 1
            if count > maxLength || scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) { return false }
        }
        return true
    }

    /// A string member; `.absent` when missing or `null`.
    enum Text {
        case absent
        case value(String)
        case wrongKind
    }

    static func text(_ member: JSONScanner.Member?, in payload: [UInt8]) -> Text {
        guard let member, member.kind != .null else { return .absent }
        guard member.kind == .string, let value = JSONScanner.decodeString(payload, range: member.range) else { return .wrongKind }
        return .value(value)
    }

    /// A non-negative integer written with digits only (no sign, fraction or exponent), of at
    /// most `maxDigits` digits, so it fits an `Int64` whatever the input says.
    static func integer(_ bytes: ArraySlice<UInt8>, maxDigits: Int) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= maxDigits, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(String(decoding: bytes, as: UTF8.self))
    }

    /// Untrusted text made safe for a log line (printable ASCII kept, the rest `\xNN`, cut at 80).
    static func forLog(_ text: String) -> String {
        DeviceID.escapedForLog(text.utf8)
    }
}
