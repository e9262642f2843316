import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The REST services of CONTRACTS.md §4 — user, device registry, billing — in one HTTP server on
/// loopback, recording every request and answering as told (a status per "METHOD /path-prefix").
public final class FakeServices: Sendable {
    public struct User: Sendable {
        public var quota = 5
        public var count = 0
        public var blocked = false

        public init(quota: Int = 5, count: Int = 0, blocked: Bool = false) {
            self.quota = quota
            self.count = count
            self.blocked = blocked
        }
    }

    public let users = Mutex<[String: User]>([:])
    /// "POST /api/devices" -> 503, say.
    public let failures = Mutex<[String: Int]>([:])
    public let requests = Mutex<[String]>([])
    /// "POST /api/devices" -> answer only after this long (a hanging service).
    public let delays = Mutex<[String: Duration]>([:])
    private let channel = Mutex<(any Channel)?>(nil)
    private let nextID = Mutex(0)

    public var baseURL: String { "http://127.0.0.1:\(channel.withLock { $0?.localAddress?.port ?? 0 })" }

    public init() {}

    public func start() async throws {
        let bound = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap { channel.pipeline.addHandler(Handler(services: self)) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel.withLock { $0 = bound }
    }

    public func stop() async {
        let bound = channel.withLock { $0 }
        try? await bound?.close()
    }

    public func fail(_ route: String, status: Int?) { failures.withLock { $0[route] = status } }

    public func delay(_ route: String, by duration: Duration?) { delays.withLock { $0[route] = duration } }

    func delay(for line: String) -> Duration? {
        delays.withLock { delays in delays.first { line.hasPrefix($0.key) }?.value }
    }

    public var recorded: [String] { requests.withLock { $0 } }

    func answer(method: String, path: String) -> (Int, String) {
        let line = "\(method) \(path)"
        requests.withLock { $0.append(line) }
        if let status = failures.withLock({ failures in failures.first { line.hasPrefix($0.key) }?.value }) {
            return (status, #"{"error":"scripted"}"#)
        }
        let parts = path.split(separator: "/").map(String.init)
        switch (method, parts.count) {
        case ("GET", 3) where parts[1] == "users":
            guard let user = users.withLock({ $0[parts[2]] }) else { return (404, #"{"error":"no such user"}"#) }
            return (200, #"{"id":"\#(parts[2])","name":"N","status":"active","blocked":\#(user.blocked),"deviceQuota":\#(user.quota),"deviceCount":\#(user.count)}"#)
        case ("POST", 4) where parts[1] == "users":
            return users.withLock({ $0[parts[2]] }) == nil ? (404, "{}") : (201, "{}")
        case ("POST", 2) where parts[1] == "devices":
            let id = nextID.withLock { value -> Int in
                value += 1
                return value
            }
            return (201, #"{"id":"r-\#(id)"}"#)
        case ("POST", 4) where parts[1] == "billing":
            return (201, "{}")
        case ("DELETE", _):
            return (204, "")
        default:
            return (404, "{}")
        }
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let services: FakeServices
        let head = Mutex<HTTPRequestHead?>(nil)

        init(services: FakeServices) { self.services = services }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let request):
                head.withLock { $0 = request }
            case .body:
                break
            case .end:
                guard let request = head.withLock({ $0 }) else { return }
                let (status, body) = services.answer(method: request.method.rawValue, path: request.uri)
                if let delay = services.delay(for: "\(request.method.rawValue) \(request.uri)") {
                    let nanoseconds = delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000
                    let context = NIOLoopBound(context, eventLoop: context.eventLoop)
                    context.value.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) {
                        Self.write(context: context.value, status: status, body: body, handler: self)
                    }
                    return
                }
                Self.write(context: context, status: status, body: body, handler: self)
            }
        }

        static func write(context: ChannelHandlerContext, status: Int, body: String, handler: Handler) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: "\(body.utf8.count)")
            context.write(handler.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: status), headers: headers))), promise: nil)
            context.write(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
