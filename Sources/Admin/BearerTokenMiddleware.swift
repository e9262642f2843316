import Hummingbird
import Metrics

/// Lets a request through only with the configured token, as `Authorization: Bearer <token>` or,
/// only for the WebSocket `/live` (a browser cannot set the header there), `?access_token=<token>`
/// (RFC 6750 §2.3). A token in the query of any other route is refused: URLs end up in browser
/// history, proxy logs and `Referer` headers. `/healthz` and `/readyz` stay open for probes, and
/// `/` for the status page's shell, which carries no data (its script asks `/api/status` with the
/// header).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    private let refused = Counter(label: "gateway.admin.requests.unauthorized.total")

    static var openPaths: Set<String> { ["/healthz", "/readyz", "/"] }
    /// Routes that take the token from the query.
    static var queryTokenPaths: Set<String> { ["/live", "/live/"] }

    init(token: String) {
        self.token = token
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if Self.openPaths.contains(request.uri.path) {
            return try await next(request, context)
        }
        var offered: Substring?
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            offered = header.dropFirst("bearer ".count)
        } else if Self.queryTokenPaths.contains(request.uri.path), let query = request.uri.queryParameters.get("access_token") {
            offered = Substring(query)
        }
        guard let offered, Self.equalInConstantTime(Array(offered.utf8), Array(token.utf8)) else {
            refused.increment()
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Bearer realm=\"edge-gateway\""
            headers[.contentType] = "application/json"
            return Response(
                status: .unauthorized, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: #"{"error":"a bearer token is required (admin.token)"}"#)))
        }
        return try await next(request, context)
    }

    /// Compares without returning early on the first difference, so response times do not tell
    /// how much of a guess was right.
    static func equalInConstantTime(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for index in 0..<max(a.count, b.count) {
            let x = index < a.count ? a[index] : 0
            let y = index < b.count ? b[index] : 0
            difference |= x ^ y
        }
        return difference == 0 && a.count == b.count
    }
}
