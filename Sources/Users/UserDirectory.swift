import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import NIOCore
import Synchronization

/// Looks users up in the user service (CONTRACTS.md §4) with a short deadline, keeps every answer
/// in a ``UserCache``, and answers from the cache when the service cannot be asked.
///
/// A 404 is an answer ("no such user"), not a failure. A timeout, a refused connection or a 5xx
/// is a failure: it counts against the service's circuit breaker, and while that is open lookups
/// go straight to the cache instead of waiting for the deadline each time.
public final class UserDirectory: Sendable {
    private let configuration: UsersConfiguration
    /// Nil without `users.baseUrl`: no HTTP client (and none of its threads) is started then.
    private let http: HTTPClient?
    private let cache: UserCache
    private let logger: Logger
    private let breaker: Mutex<CircuitBreaker>
    private let fallbackLog: RateLimitedLog

    /// - Parameter http: the client for the user service; by default AsyncHTTPClient's shared one,
    ///   when `baseURL` is set.
    public init(configuration: UsersConfiguration, http: HTTPClient? = nil, cache: UserCache, logger: Logger) {
        self.configuration = configuration
        self.http = configuration.baseURL == nil ? nil : (http ?? .shared)
        self.cache = cache
        self.logger = logger
        breaker = Mutex(CircuitBreaker(configuration: configuration.breaker))
        fallbackLog = RateLimitedLog(logger: logger, interval: .seconds(30))
    }

    /// The service's breaker state (for status and metrics).
    public var breakerState: CircuitBreaker.State { breaker.withLock { $0.state } }

    /// Looks `userID` up: the service first, the cache when the service cannot answer.
    public func lookup(_ userID: String) async -> UserLookup {
        guard let base = configuration.baseURL, let http else {
            return fromCache(userID, reason: "no user service configured (users.baseUrl)")
        }
        guard breaker.withLock({ $0.allowsCall(at: .now) }) else {
            return fromCache(userID, reason: "the user service's circuit breaker is open")
        }
        let outcome = await fetch(http, base: base, userID: userID)
        let change = breaker.withLock { $0.record(failed: outcome.failed, at: .now) }
        if let change {
            logger.info("user service circuit breaker \(change.rawValue)", metadata: ["users.breaker": "\(change.rawValue)"])
        }
        switch outcome {
        case .found(let record):
            do {
                try cache.store(record)
            } catch {
                logger.warning("cannot cache a user record", metadata: ["user.id": "\(userID)", "error": "\(error)"])
            }
            return .found(record)
        case .notFound:
            try? cache.remove(userID)
            return .notFound
        case .failed(let reason):
            return fromCache(userID, reason: reason)
        }
    }

    private func fromCache(_ userID: String, reason: String) -> UserLookup {
        let cached: (record: UserRecord, fetchedAt: Int64)?
        do {
            cached = try cache.record(userID)
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

    enum FetchOutcome {
        case found(UserRecord)
        case notFound
        case failed(String)

        var failed: Bool {
            if case .failed = self { return true }
            return false
        }
    }

    private func fetch(_ http: HTTPClient, base: String, userID: String) async -> FetchOutcome {
        let escaped = userID.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? userID
        var request = HTTPClientRequest(url: "\(base)/api/users/\(escaped)")
        request.headers.add(name: "Accept", value: "application/json")
        let timeout = TimeAmount.nanoseconds(Int64(configuration.timeout.components.seconds) * 1_000_000_000
            + configuration.timeout.components.attoseconds / 1_000_000_000)
        do {
            let response = try await http.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: 256 * 1024)
            switch response.status.code {
            case 200..<300:
                do {
                    let record = try JSONDecoder().decode(UserRecord.self, from: Data(body.readableBytesView))
                    return .found(record)
                } catch {
                    return .failed("the user service answered with an unreadable record: \(error)")
                }
            case 404:
                return .notFound
            default:
                // Another 4xx (401, 403, ...): the gateway cannot use the service as configured.
                return .failed("the user service answered \(response.status.code)")
            }
        } catch {
            return .failed("\(error)")
        }
    }
}
