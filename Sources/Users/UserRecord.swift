/// A user as the user service describes one (CONTRACTS.md §4, `GET /api/users/{userId}`).
public struct UserRecord: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var status: String
    public var blocked: Bool
    public var deviceQuota: Int
    public var deviceCount: Int

    public init(id: String, name: String = "", status: String = "", blocked: Bool = false, deviceQuota: Int = 0, deviceCount: Int = 0) {
        self.id = id
        self.name = name
        self.status = status
        self.blocked = blocked
        self.deviceQuota = deviceQuota
        self.deviceCount = deviceCount
    }

    enum CodingKeys: String, CodingKey {
        case id, name, status, blocked, deviceQuota, deviceCount
    }

    /// Lenient about what the contract leaves open: only `id` is required; a missing field takes
    /// its neutral value (not blocked, no quota).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? ""
        status = try container.decodeIfPresent(String.self, forKey: .status) ?? ""
        blocked = try container.decodeIfPresent(Bool.self, forKey: .blocked) ?? false
        deviceQuota = try container.decodeIfPresent(Int.self, forKey: .deviceQuota) ?? 0
        deviceCount = try container.decodeIfPresent(Int.self, forKey: .deviceCount) ?? 0
    }
}

/// What a lookup found out.
public enum UserLookup: Sendable, Equatable {
    /// From the service just now.
    case found(UserRecord)
    /// The service could not be asked (down, slow, 5xx, or its breaker is open); this is the
    /// last record it gave. `reason` says why the service was not used.
    case cached(UserRecord, reason: String)
    /// The service says there is no such user (404).
    case notFound
    /// The service could not be asked and nothing is cached.
    case unavailable(reason: String)

    /// The record, fresh or cached.
    public var record: UserRecord? {
        switch self {
        case .found(let record), .cached(let record, _): record
        case .notFound, .unavailable: nil
        }
    }
}
