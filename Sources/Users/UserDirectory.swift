import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import REST
import Reporting

/// Looks users up in the user service (CONTRACTS.md §4) with a short deadline, keeps every answer
/// in a ``UserCache``, and answers from the cache when the service cannot be asked.
///
/// A 404 is an answer ("no such user"), not a failure. A timeout, a refused connection or a 5xx
/// is a failure: it counts against the service's circuit breaker, and while that is open lookups
/// go straight to the cache instead of waiting for the deadline each time.
public final class UserDirectory: Sendable {
    private let configuration: UsersConfiguration
    /// Nil without `users.baseUrl`: no HTTP client (and none of its threads) is started then.
    private let service: ServiceClient?
    private let cache: UserCache
    private let logger: Logger
    private let fallbackLog: RateLimitedLog

    /// - Parameter http: the client for the user service; by default AsyncHTTPClient's shared one,
    ///   when `baseURL` is set.
    public init(configuration: UsersConfiguration, http: HTTPClient? = nil, cache: UserCache, logger: Logger) {
        self.configuration = configuration
        service = configuration.baseURL.map {
            ServiceClient(name: "user", baseURL: $0, timeout: configuration.timeout, breaker: configuration.breaker, http: http, logger: logger)
        }
        self.cache = cache
        self.logger = logger
        fallbackLog = RateLimitedLog(logger: logger, interval: .seconds(30))
    }

    /// The service's breaker state (for status and metrics); nil without a service.
    public var breakerState: CircuitBreaker.State? { service?.breakerState }

    /// Looks `userID` up: the service first, the cache when the service cannot answer (down, slow,
    /// 5xx, another 4xx than 404, an unreadable record, or its breaker open).
    public func lookup(_ userID: String) async -> UserLookup {
        guard let service else { return await fromCache(userID, reason: "no user service configured (users.baseUrl)") }
        let response: ServiceClient.Response
        do {
            response = try await service.call(.GET, "/api/users/\(ServiceClient.segment(userID))")
        } catch {
            return await fromCache(userID, reason: error.message)
        }
        guard response.status != 404 else {
            try? await cache.remove(userID)
            return .notFound
        }
        guard let record = try? JSONDecoder().decode(UserRecord.self, from: response.body) else {
            return await fromCache(userID, reason: "the user service answered with an unreadable record")
        }
        do {
            try await cache.store(record)
        } catch {
            logger.warning("cannot cache a user record", metadata: ["user.id": "\(userID)", "error": "\(error)"])
        }
        return .found(record)
    }

    private func fromCache(_ userID: String, reason: String) async -> UserLookup {
        let cached: (record: UserRecord, fetchedAt: Int64)?
        do {
            cached = try await cache.record(userID)
        } catch {
            logger.warning("cannot read the user cache", metadata: ["user.id": "\(userID)", "error": "\(error)"])
            cached = nil
        }
        guard let cached else {
            fallbackLog.warning(
                key: "uncached", count: 1, "user service unavailable and the user is not cached",
                metadata: ["user.id": "\(userID)", "reason": "\(reason)"])
            return .unavailable(reason: reason)
        }
        let ageSeconds = max(0, Int64(Date().timeIntervalSince1970 * 1000) - cached.fetchedAt) / 1000
        fallbackLog.warning(
            key: "cached", count: 1, "user service unavailable; using the cached user record",
            metadata: ["user.id": "\(userID)", "reason": "\(reason)", "users.cache_age_s": "\(ageSeconds)"])
        return .cached(cached.record, reason: reason)
    }
}
