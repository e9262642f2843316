/// A JSON object that keeps its members in the order they were added, with unique keys.
///
/// Keys are compared by their UTF-8 bytes, as JSON (and JavaScript) compares them: `"é"` written
/// precomposed and `"é"` written as `e` + combining accent are two different keys here, although
/// Swift's `String ==` calls them equal. Setting an existing key replaces its value in place;
/// a new key goes at the end; setting `nil` removes the key.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    /// One member: a key and its value.
    public struct Member: Sendable {
        public var key: String
        public var value: JSONValue
    }

    /// The members in order.
    public private(set) var members: [Member] = []
    /// Position of each key in `members`.
    private var positions: [MemberKey: Int] = [:]

    public init() {}

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    /// The value of `key`; setting `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get {
            positions[MemberKey(key)].map { members[$0].value }
        }
        set {
            let memberKey = MemberKey(key)
            if let position = positions[memberKey] {
                if let newValue {
                    members[position].value = newValue
                } else {
                    members.remove(at: position)
                    positions[memberKey] = nil
                    for index in position..<members.count {
                        positions[MemberKey(members[index].key)] = index
                    }
                }
            } else if let newValue {
                positions[memberKey] = members.count
                members.append(Member(key: key, value: newValue))
            }
        }
    }

    /// Adds a member whose key is not there yet; false (and nothing changed) when it is.
    mutating func insertNew(key: String, value: JSONValue) -> Bool {
        let memberKey = MemberKey(key)
        guard positions[memberKey] == nil else { return false }
        positions[memberKey] = members.count
        members.append(Member(key: key, value: value))
        return true
    }

    /// Same keys with equal values, in any order.
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.members.count == rhs.members.count else { return false }
        for member in lhs.members {
            guard let other = rhs[member.key], other == member.value else { return false }
        }
        return true
    }

    /// A key as JSON compares it: by its UTF-8 bytes (Swift's `String ==` would apply Unicode
    /// canonical equivalence). Costs no copy of the key.
    private struct MemberKey: Hashable, Sendable {
        let string: String

        init(_ string: String) {
            self.string = string
        }

        static func == (lhs: MemberKey, rhs: MemberKey) -> Bool {
            lhs.string.utf8.elementsEqual(rhs.string.utf8)
        }

        func hash(into hasher: inout Hasher) {
            for byte in string.utf8 { hasher.combine(byte) }
            hasher.combine(UInt8(0xFF))  // never in UTF-8: ends the key
        }
    }
}
