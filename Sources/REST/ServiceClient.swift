import AsyncHTTPClient
import Foundation
import GatewayCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Why a call to a REST service did not give an answer.
public struct ServiceError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The request cannot succeed (refused by the service, quota exceeded, ...): do not retry.
        case refused
        /// The service could not be reached or failed (timeout, 5xx, breaker open).
        case unavailable
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// One REST service of CONTRACTS.md §4 (user, device registry, billing): JSON over HTTP(S) with a
/// deadline per call and a circuit breaker. A 404 is an answer ("not found"), not a failure; a
/// timeout, a refused connection or a 5xx is a failure and counts against the breaker (while it
/// is open, calls fail at once); any other 4xx means the service refused the request.
public final class ServiceClient: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var body: Data

        public var json: [String: Any]? { try? JSONSerialization.jsonObject(with: body) as? [String: Any] }
    }

    public let name: String
    public let baseURL: String
    private let timeout: Duration
    private let http: HTTPClient
    private let breaker: Mutex<CircuitBreaker>
    private let logger: Logger

    public init(
        name: String, baseURL: String, timeout: Duration, breaker: CircuitBreaker.Configuration = .init(),
        http: HTTPClient? = nil, logger: Logger
    ) {
        self.name = name
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.timeout = timeout
        self.http = http ?? .shared
        self.breaker = Mutex(CircuitBreaker(configuration: breaker))
        self.logger = logger
    }

    public var breakerState: CircuitBreaker.State { breaker.withLock { $0.state } }

    /// Sends one request. 2xx and 404 come back as a ``Response``; other outcomes throw:
    /// `.unavailable` (timeout, connection, 5xx, breaker open), `.refused` (other 4xx).
    public func call(_ method: HTTPMethod, _ path: String, json body: [String: Any]? = nil, requestID: String? = nil)
        async throws(ServiceError) -> Response
    {
        guard breaker.withLock({ $0.allowsCall(at: .now) }) else {
            throw ServiceError(.unavailable, "the \(name) service's circuit breaker is open")
        }
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        if let requestID { request.headers.add(name: "Idempotency-Key", value: requestID) }
        if let body, let data = try? JSONSerialization.data(withJSONObject: body) {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        let deadline = TimeAmount.nanoseconds(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
        let outcome: Result<Response, ServiceError>
        do {
            let response = try await http.execute(request, timeout: deadline)
            let bytes = try await response.body.collect(upTo: 1024 * 1024)
            let status = Int(response.status.code)
            let answer = Response(status: status, body: Data(bytes.readableBytesView))
            switch status {
            case 200..<300, 404: outcome = .success(answer)
            case 500...: outcome = .failure(ServiceError(.unavailable, "\(name) service answered \(status) to \(method.rawValue) \(path)"))
            default:
                let detail = answer.json?["error"] as? String ?? String(decoding: answer.body.prefix(200), as: UTF8.self)
                outcome = .failure(ServiceError(.refused, "\(name) service refused \(method.rawValue) \(path): \(status) \(detail)"))
            }
        } catch {
            outcome = .failure(ServiceError(.unavailable, "\(name) service: \(method.rawValue) \(path): \(error)"))
        }
        let failed: Bool = if case .failure(let error) = outcome { error.kind == .unavailable } else { false }
        if let change = breaker.withLock({ $0.record(failed: failed, at: .now) }) {
            logger.info("\(name) service circuit breaker \(change.rawValue)", metadata: ["service": "\(name)", "breaker": "\(change.rawValue)"])
        }
        return try outcome.get()
    }

    /// Percent-encodes one path segment.
    public static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? text
    }
}
