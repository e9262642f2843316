import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The user service of CONTRACTS.md §4 on a loopback port (HTTP/1.1): `GET /api/users/{id}`
/// answers the record set for that id, or 404. It can be stopped (connection refused) and
/// started again on the same port, or told to answer 503.
final class FakeUserService: Sendable {
    struct Record: Sendable {
        var id: String
        var name: String
        var blocked = false
    }

    let records = Mutex<[String: Record]>([:])
    let failing = Mutex(false)
    let requests = Mutex<[String]>([])
    private let channel = Mutex<(any Channel)?>(nil)
    /// Open connections, closed on `stop()` too (the gateway's HTTP client keeps connections alive).
    private let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let boundPort = Mutex(0)

    var port: Int { boundPort.withLock { $0 } }
    var baseURL: String { "http://127.0.0.1:\(port)" }

    func set(_ record: Record) { records.withLock { $0[record.id] = record } }

    /// Listens on `port` (0: a free one, then the same one on every later start).
    func start(port: Int? = nil) async throws {
        let wanted = port ?? self.port
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                self.connections.withLock { $0[ObjectIdentifier(channel)] = channel }
                channel.closeFuture.whenComplete { _ in _ = self.connections.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) } }
                return channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(service: self))
                }
            }
        let bound = try await bootstrap.bind(host: "127.0.0.1", port: wanted).get()
        channel.withLock { $0 = bound }
        boundPort.withLock { $0 = bound.localAddress?.port ?? wanted }
    }

    /// Stops listening: lookups now meet a refused connection.
    func stop() async {
        let bound = channel.withLock { channel in
            defer { channel = nil }
            return channel
        }
        try? await bound?.close()
        for connection in connections.withLock({ Array($0.values) }) {
            try? await connection.close()
        }
    }

    func answer(path: String) -> (HTTPResponseStatus, String) {
        requests.withLock { $0.append(path) }
        if failing.withLock({ $0 }) { return (.serviceUnavailable, #"{"error":"down for maintenance"}"#) }
        let prefix = "/api/users/"
        guard path.hasPrefix(prefix) else { return (.notFound, "{}") }
        let id = String(path.dropFirst(prefix.count)).removingPercentEncoding ?? ""
        guard let record = records.withLock({ $0[id] }) else { return (.notFound, #"{"error":"no such user"}"#) }
        let json: [String: Any] = [
            "id": record.id, "name": record.name, "status": record.blocked ? "blocked" : "active", "blocked": record.blocked,
            "deviceQuota": 5, "deviceCount": 1,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: json)) ?? Data()
        return (.ok, String(decoding: data, as: UTF8.self))
    }

    final class Handler: ChannelInboundHandler, Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let service: FakeUserService
        let path = Mutex("")

        init(service: FakeUserService) { self.service = service }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                path.withLock { $0 = head.uri }
            case .body:
                break
            case .end:
                let (status, body) = service.answer(path: path.withLock { $0 })
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: "\(body.utf8.count)")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
