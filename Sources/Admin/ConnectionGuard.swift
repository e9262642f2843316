import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// The admin server's connections, bounded before Hummingbird sees a request:
///
/// - at most `admin.maxConnections` open at once (WebSockets included); one over the cap is closed
///   as soon as it is accepted, before any HTTP handler or buffer is set up for it;
/// - a connection must send a complete request head within `admin.idleTimeoutSeconds` (a client
///   that connects and sends nothing, or drips a header a byte at a time, is closed); after the
///   first request Hummingbird's own idle timeout (the same value) closes it between requests;
/// - a WebSocket upgrade that ``RequestGuardMiddleware`` would refuse (foreign `Host` or `Origin`)
///   is not offered to the upgrader but passed on as a plain request, so the client gets the
///   middleware's 421 or 403 instead of the upgrader's generic 400.
///
/// It wraps the server's child channel (``ServerChildChannel``), so it needs nothing of
/// Hummingbird's internals.
struct GuardedChildChannel<Inner: ServerChildChannel>: ServerChildChannel {
    /// The inner channel's value, or none for a connection closed over the cap.
    struct Value: ServerChildChannelValue {
        let channel: any Channel
        let inner: Inner.Value?
        let closedByGuard: ClosedByGuard
    }

    let inner: Inner
    let connections: ConnectionCount
    let idleTimeout: TimeAmount
    let policy: HostPolicy
    let rejections: AdminRejections

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let closedByGuard = ClosedByGuard()
        guard connections.open() else {
            rejections.reject(
                .tooManyConnections, "admin connection over the limit closed (admin.maxConnections)",
                metadata: ["admin.max_connections": "\(connections.limit)"])
            channel.close(promise: nil)
            return channel.eventLoop.makeSucceededFuture(Value(channel: channel, inner: nil, closedByGuard: closedByGuard))
        }
        channel.closeFuture.whenComplete { [connections] _ in connections.close() }
        let (idleTimeout, policy, rejections) = (idleTimeout, policy, rejections)
        return inner.setup(channel: channel, logger: logger).map { value in
            let guardHandler = FirstRequestGuard(timeout: idleTimeout, policy: policy, rejections: rejections, closedByGuard: closedByGuard)
            do {
                let decoder = try channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
                try channel.pipeline.syncOperations.addHandler(guardHandler, position: .after(decoder))
            } catch {
                // A pipeline without the decoder is not ours to judge; keep the connection bounded.
                logger.error("admin connection without an HTTP decoder; closing it", metadata: ["error": "\(error)"])
                channel.close(promise: nil)
            }
            return Value(channel: channel, inner: value, closedByGuard: closedByGuard)
        }
    }

    func handle(value: Value, logger: Logger) async {
        guard let inner = value.inner else { return }
        // Hummingbird logs a connection that ends before its first request as an error; when the
        // guard ended it (idle), that was counted and logged (rate-limited) already.
        let base = logger.handler
        let quiet = Logger(label: logger.label) { _ in QuietWhenClosedByGuard(base: base, closedByGuard: value.closedByGuard) }
        await self.inner.handle(value: inner, logger: quiet)
    }
}

/// Set when the guard itself closed a connection (no request in time).
final class ClosedByGuard: Sendable {
    private let flag = Atomic(false)
    var value: Bool { flag.load(ordering: .relaxed) }
    func set() { flag.store(true, ordering: .relaxed) }
}

/// Passes everything to `base`, but once the guard closed the connection, errors and warnings
/// about it are logged at debug.
struct QuietWhenClosedByGuard: LogHandler {
    var base: any LogHandler
    let closedByGuard: ClosedByGuard

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        if closedByGuard.value, event.level > .debug { event.level = .debug }
        guard event.level >= base.logLevel else { return }
        base.log(event: event)
    }
}

/// Open connections against `admin.maxConnections`.
final class ConnectionCount: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) {
        self.limit = limit
    }

    var current: Int { count.withLock { $0 } }

    /// Counts a new connection when there is room; false when it must be refused.
    func open() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func close() {
        count.withLock { $0 -= 1 }
    }
}

/// Sits after the HTTP decoder until the first request head: closes the connection when none
/// arrives in time, and turns a WebSocket upgrade the middleware would refuse into a plain request.
/// Removes itself after the head (later requests on a kept-alive connection cannot upgrade).
final class FirstRequestGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    let timeout: TimeAmount
    let policy: HostPolicy
    let rejections: AdminRejections
    let closedByGuard: ClosedByGuard
    private var timer: Scheduled<Void>?
    private var done = false

    init(timeout: TimeAmount, policy: HostPolicy, rejections: AdminRejections, closedByGuard: ClosedByGuard) {
        self.timeout = timeout
        self.policy = policy
        self.rejections = rejections
        self.closedByGuard = closedByGuard
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let (rejections, closedByGuard, seconds) = (rejections, closedByGuard, timeout.nanoseconds / 1_000_000_000)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            closedByGuard.set()
            rejections.reject(
                .idleTimeout, "admin connection closed: no complete request within the idle timeout (admin.idleTimeoutSeconds)",
                metadata: ["admin.idle_timeout_seconds": "\(seconds)"])
            loopBound.value.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done, case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        done = true
        timer?.cancel()
        timer = nil
        if head.headers.contains(name: "upgrade"), refuses(head) {
            head.headers.remove(name: "upgrade")
            context.fireChannelRead(wrapInboundOut(.head(head)))
        } else {
            context.fireChannelRead(data)
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// The middleware's Host and Origin checks, on the NIO head.
    private func refuses(_ head: HTTPRequestHead) -> Bool {
        guard let host = head.headers.first(name: "host"), policy.allowsHost(host) else { return true }
        if let origin = head.headers.first(name: "origin"), !policy.allowsOrigin(origin, requestHost: host) { return true }
        return false
    }
}
