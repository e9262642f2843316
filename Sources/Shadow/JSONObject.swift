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
    /// Position of each key in `members`, by the key's UTF-8 bytes.
    private var positions: [[UInt8]: Int] = [:]

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
            positions[Array(key.utf8)].map { members[$0].value }
        }
        set {
            let bytes = Array(key.utf8)
            if let position = positions[bytes] {
                if let newValue {
                    members[position].value = newValue
                } else {
                    members.remove(at: position)
                    positions[bytes] = nil
                    for index in position..<members.count {
                        positions[Array(members[index].key.utf8)] = index
                    }
                }
            } else if let newValue {
                positions[bytes] = members.count
                members.append(Member(key: key, value: newValue))
            }
        }
    }

    /// Adds a member whose key is not there yet; false (and nothing changed) when it is.
    mutating func insertNew(key: String, value: JSONValue) -> Bool {
        let bytes = Array(key.utf8)
        guard positions[bytes] == nil else { return false }
        positions[bytes] = members.count
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
}
