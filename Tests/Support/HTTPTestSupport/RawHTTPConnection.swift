import Foundation
import NIOCore
import NIOPosix

/// One TCP connection to an admin server (or the daemon's admin port) on loopback, spoken to byte by byte the way an
/// attacker's tool would: any `Host`, half a request head, or nothing at all.
public final class RawHTTPConnection {
    public struct Reply: Sendable {
        public var status: Int
        public var head: String
        public var body: String
    }

    public struct Closed: Error {}

    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var buffer: [UInt8] = []

    private init(outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) {
        self.outbound = outbound
        self.inbound = inbound
    }

    /// Connects to 127.0.0.1:`port` and runs `body` with the connection; closes it afterwards.
    public static func with<T>(port: Int, _ body: (RawHTTPConnection) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(RawHTTPConnection(outbound: outbound, inbound: inbound.makeAsyncIterator()))
        }
    }

    /// Connects, sends `text` (if the server still reads), and returns what the server sent before
    /// it closed the connection; a reset counts as closed.
    public static func answerBeforeClose(port: Int, sending text: String? = nil) async throws -> [UInt8] {
        var received: [UInt8] = []
        do {
            received = try await with(port: port) { connection in
                if let text { try? await connection.send(text) }
                return try await connection.readUntilClosed()
            }
        } catch let error as IOError where error.errnoCode == 104 {  // ECONNRESET
        }
        return received
    }

    public func send(_ text: String) async throws {
        try await outbound.write(ByteBuffer(string: text))
    }

    /// A GET with the given `Host` and extra header lines, kept alive.
    public func request(_ path: String, host: String = "127.0.0.1", headers: [String] = []) async throws -> Reply {
        try await request("GET", path, host: host, headers: headers)
    }

    /// A request with the given `Host` and extra header lines, kept alive.
    public func request(_ method: String, _ path: String, host: String = "127.0.0.1", headers: [String] = [], body: String? = nil) async throws -> Reply {
        var lines = ["\(method) \(path) HTTP/1.1", "Host: \(host)"] + headers
        if let body { lines.append("Content-Length: \(body.utf8.count)") }
        try await send(lines.joined(separator: "\r\n") + "\r\n\r\n" + (body ?? ""))
        return try await readReply()
    }

    /// The next response (head and a `Content-Length` body).
    public func readReply() async throws -> Reply {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        var end: Int?
        while end == nil {
            if let index = Self.find(separator, in: buffer) {
                end = index
            } else {
                try await fill()
            }
        }
        let head = String(decoding: buffer[..<end!], as: UTF8.self)
        buffer.removeFirst(end! + separator.count)
        let length = head.split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
        while buffer.count < length { try await fill() }
        let body = String(decoding: buffer[..<length], as: UTF8.self)
        buffer.removeFirst(length)
        let status = head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } ?? 0
        return Reply(status: status, head: head, body: body)
    }

    /// Reads until the server closes the connection; returns what it sent before.
    public func readUntilClosed() async throws -> [UInt8] {
        while true {
            do {
                try await fill()
            } catch {
                // The end of the stream, or a reset (ECONNRESET): closed either way.
                return buffer
            }
        }
    }

    /// Reads until what the server sent (after the replies already read) satisfies `condition`; returns it.
    /// Waits as long as the server sends nothing: bound the test with a time limit.
    public func read(until condition: ([UInt8]) -> Bool) async throws -> [UInt8] {
        while !condition(buffer) { try await fill() }
        return buffer
    }

    private func fill() async throws {
        guard let chunk = try await inbound.next() else { throw Closed() }
        buffer += chunk.readableBytesView
    }

    /// Where `needle` first starts in `haystack`, or nil.
    public static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle) {
            return start
        }
        return nil
    }
}
