import GatewayCore

/// The user service (`users.*`, CONTRACTS.md §4) and what happens without it.
public struct UsersConfiguration: Sendable, Equatable {
    /// What a dialog whose user is unknown gets: no user id, or the service cannot say and nothing
    /// is cached (`users.unknownUserPolicy`).
    public enum UnknownUserPolicy: String, Sendable, CaseIterable {
        /// The dialog goes on with an empty user id (the outbox key is then the device id).
        case allow
        /// The device gets a `DIALOG_RESPONSE` saying the user is not known; no intent analysis.
        case deny
    }

    /// `https://users.example.com` (no trailing `/api`); nil: no user service, every user is unknown
    /// unless cached.
    public var baseURL: String?
    /// Deadline of one lookup, connection included (`users.timeoutMs`).
    public var timeout: Duration = .milliseconds(1500)
    public var unknownUserPolicy: UnknownUserPolicy = .allow
    /// The SQLite file that keeps the last record of every user looked up (`users.cachePath`).
    public var cachePath: String
    /// Most users kept in the cache; the least recently fetched go first (`users.cacheMaxEntries`).
    public var cacheMaxEntries: Int = 10_000
    /// When the service keeps failing, lookups go straight to the cache while this breaker is open.
    public var breaker = CircuitBreaker.Configuration()

    public init(cachePath: String) {
        self.cachePath = cachePath
    }
}
