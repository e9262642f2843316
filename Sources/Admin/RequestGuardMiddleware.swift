import Hummingbird
import Logging

/// What a browser could be made to send the hub, refused before the token is even looked at
/// (README "Admin API, metrics and the status page"):
///
/// 1. `Host` (HTTP/1.1 `Host`, seen as `:authority`) must name the hub (``HostPolicy``), on every
///    route, `/healthz` and `/readyz` included: otherwise **421 Misdirected Request**. A page whose
///    name was rebound to the hub's address sends its own name here.
/// 2. State-changing methods (POST, PUT, PATCH, DELETE) and `/live` (the WebSocket upgrade) with
///    an `Origin` that is not the hub's own page get **403**; `Origin: null` too. Without `Origin`
///    (curl, scripts) they pass: browsers always send it on these requests.
/// 3. A body on POST, PUT or PATCH must be `application/json` (parameters such as `charset`
///    allowed), otherwise **415**: a cross-site page can only send `text/plain`, form or multipart
///    bodies without a CORS preflight, which this server never grants.
struct RequestGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: HostPolicy
    let rejections: AdminRejections

    static var stateChanging: Set<HTTPRequest.Method> { [.post, .put, .patch, .delete] }
    static var withBody: Set<HTTPRequest.Method> { [.post, .put, .patch] }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let host = request.head.authority
        guard let host, policy.allowsHost(host) else {
            rejections.reject(
                .misdirectedHost, "admin request for another host refused (admin.allowedHosts)",
                metadata: ["http.host": "\(Self.printable(host ?? "-"))", "http.path": "\(Self.printable(request.uri.path))"])
            return Self.refusal(.misdirectedRequest, "this server answers only for the hub's own names (admin.allowedHosts)")
        }
        let isLive = request.uri.path == "/live" || request.uri.path == "/live/"
        if Self.stateChanging.contains(request.method) || isLive, let origin = request.headers[.origin],
            !policy.allowsOrigin(origin, requestHost: host)
        {
            rejections.reject(
                .foreignOrigin, "admin request from another site's page refused",
                metadata: ["http.origin": "\(Self.printable(origin))", "http.method": "\(request.method)", "http.path": "\(Self.printable(request.uri.path))"])
            return Self.refusal(.forbidden, "requests from other sites' pages are refused (Origin)")
        }
        if Self.withBody.contains(request.method), !Self.isJSON(request.headers[.contentType]) {
            rejections.reject(
                .unsupportedMediaType, "admin request body that is not application/json refused",
                metadata: ["http.content_type": "\(Self.printable(request.headers[.contentType] ?? "-"))", "http.path": "\(Self.printable(request.uri.path))"])
            return Self.refusal(.unsupportedMediaType, "the body must be application/json (Content-Type)")
        }
        return try await next(request, context)
    }

    /// `application/json`, with or without parameters (`; charset=utf-8`), any case.
    static func isJSON(_ contentType: String?) -> Bool {
        guard let contentType else { return false }
        let media = contentType.split(separator: ";", maxSplits: 1).first.map(String.init) ?? ""
        return media.trimmingCharacters(in: .whitespaces).lowercased() == "application/json"
    }

    static func refusal(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: #"{"error":"\#(message)"}"#)))
    }

    /// A header value for a log line: at most 100 printable ASCII characters.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.prefix(100).map { (0x20..<0x7F).contains($0.value) ? Character($0) : "?" })
    }
}
