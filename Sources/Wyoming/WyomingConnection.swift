import NIOCore
import NIOPosix
import Synchronization

/// One call's TCP connection: connect within `timeouts.connect`, then a reader (events out of the bytes, through
/// ``WyomingDecoder``'s limits) and a writer racing in a task group, the writer also holding the deadline.
///
/// The reference servers handle one conversation per connection (their handlers end after the answer), so each
/// call opens its own connection and closes it when the call ends, however it ends. Reading applies NIO's
/// backpressure (at most a few reads buffered), writing waits for the socket, so a call's memory is bounded by
/// the limits whatever the server does.
enum WyomingConnection {
    /// What the writer side ended with.
    enum WriterEnd: Sendable {
        /// The deadline passed after the request was sent; for `detect` that is a normal end.
        case deadlinePassed
    }

    /// The caller's audio sequence failed: its error ends the call as it is.
    struct AudioSourceFailure: Error {
        var error: any Error
    }

    private enum Outcome<T: Sendable>: Sendable {
        case answer(T)
        case writer(WriterEnd)
    }

    /// Connects, runs `write` (which sends the request and returns; the deadline starts when it returns) beside
    /// `read` (which returns the answer). `deadlineIsError`: whether the deadline passing fails the call even
    /// when the server sent nothing since its last whole event (for `detect`: no, that is "nothing heard");
    /// a deadline that passes inside an event (a dripping server) always fails it.
    static func call<T: Sendable>(
        host: String, port: Int, limits: WyomingLimits, timeouts: WyomingTimeouts, group: any EventLoopGroup,
        what: String, deadlineIsError: Bool = true,
        write: @escaping @Sendable (WyomingWriter) async throws -> Void,
        read: @escaping @Sendable (inout WyomingReader) async throws -> T
    ) async throws -> T? {
        let channel = try await connect(host: host, port: port, timeouts: timeouts, group: group)
        let underlying = channel.channel
        do {
            let answer = try await withTaskCancellationHandler {
                try await channel.executeThenClose { inbound, outbound in
                    try await withThrowingTaskGroup(of: Outcome<T>.self, returning: T?.self) { tasks in
                        let progress = CallProgress()
                        tasks.addTask {
                            var reader = WyomingReader(inbound: inbound, limits: limits, progress: progress)
                            return .answer(try await read(&reader))
                        }
                        tasks.addTask {
                            try await write(WyomingWriter(outbound: outbound, channel: underlying, limit: timeouts.call, progress: progress))
                            progress.markRequestSent()
                            try await Task.sleep(for: timeouts.call)
                            return .writer(.deadlinePassed)
                        }
                        defer {
                            tasks.cancelAll()
                            underlying.close(promise: nil)
                        }
                        let outcome: Outcome<T>
                        do {
                            outcome = try await tasks.next()!
                        } catch let error as WyomingError where error.code == .connectionClosed && progress.isClosedAtDeadline {
                            // The writer closed the connection at its deadline; the reader may see that close first.
                            throw WyomingError(.deadlineExceeded, "\(what): the server took nothing for \(timeouts.call) (timeouts.call): it stopped reading")
                        }
                        switch outcome {
                        case .answer(let answer):
                            return answer
                        case .writer(.deadlinePassed):
                            if deadlineIsError || progress.isInsideEvent {
                                throw WyomingError(.deadlineExceeded, "\(what): no answer within \(timeouts.call) (timeouts.call)")
                            }
                            return nil
                        }
                    }
                }
            } onCancel: {
                underlying.close(promise: nil)
            }
            return answer
        } catch let error as WyomingError {
            throw error
        } catch let failure as AudioSourceFailure {
            throw failure.error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw WyomingError(.io, "\(what): \(error)")
        }
    }

    private static func connect(
        host: String, port: Int, timeouts: WyomingTimeouts, group: any EventLoopGroup
    ) async throws(WyomingError) -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        let milliseconds = timeouts.connect.components.seconds * 1000 + timeouts.connect.components.attoseconds / 1_000_000_000_000_000
        do {
            return try await ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(max(1, milliseconds)))
                .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw WyomingError(.connectFailed, "cannot connect to \(host):\(port) within \(timeouts.connect) (\(error))")
        }
    }
}

/// What the reader and the writer of one call tell each other.
final class CallProgress: Sendable {
    private let requestSent = Atomic<Bool>(false)
    private let insideEvent = Atomic<Bool>(false)
    private let closedAtDeadline = Atomic<Bool>(false)

    /// Whether the request (for the streaming calls: the audio up to `audio-stop`) has been sent.
    var isRequestSent: Bool { requestSent.load(ordering: .acquiring) }
    func markRequestSent() { requestSent.store(true, ordering: .releasing) }

    /// Whether part of an event has arrived and the rest is still owed.
    var isInsideEvent: Bool { insideEvent.load(ordering: .acquiring) }
    func setInsideEvent(_ value: Bool) { insideEvent.store(value, ordering: .releasing) }

    /// Whether the writer closed the connection because the server took nothing within the deadline: the
    /// reader's "connection closed" is then that deadline, not the server's doing.
    var isClosedAtDeadline: Bool { closedAtDeadline.load(ordering: .acquiring) }
    func markClosedAtDeadline() { closedAtDeadline.store(true, ordering: .releasing) }
}

/// Sends events on a call's connection; each write waits until the socket took it (backpressure), at most
/// `limit` (`timeouts.call`): a server that stops reading fails the call even while the audio streams.
struct WyomingWriter: Sendable {
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    let channel: any Channel
    let limit: Duration
    let progress: CallProgress

    func send(_ event: WyomingEvent) async throws {
        let taken = try await withThrowingTaskGroup(of: Bool.self, returning: Bool.self) { tasks in
            tasks.addTask {
                try await write(event)
                return true
            }
            tasks.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let taken = try await tasks.next()!
            // Closing fails the stuck write, so the group can end whatever NIO's writer does on cancellation.
            if !taken {
                progress.markClosedAtDeadline()
                channel.close(promise: nil)
            }
            tasks.cancelAll()
            return taken
        }
        if !taken {
            throw WyomingError(.deadlineExceeded, "the server took no \(event.type) for \(limit) (timeouts.call): it stopped reading")
        }
    }

    private func write(_ event: WyomingEvent) async throws {
        let bytes = try event.encoded()
        do {
            try await outbound.write(ByteBuffer(bytes: bytes))
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw WyomingError(.connectionClosed, "the server stopped taking events (at \(event.type)): \(error)")
        }
    }
}

/// Takes events off a call's connection, at most `limits.maxEventsPerCall`.
struct WyomingReader {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private var decoder: WyomingDecoder
    private var events = 0
    let progress: CallProgress

    init(inbound: NIOAsyncChannelInboundStream<ByteBuffer>, limits: WyomingLimits, progress: CallProgress) {
        iterator = inbound.makeAsyncIterator()
        decoder = WyomingDecoder(limits: limits)
        self.progress = progress
    }

    /// Whether the whole request (for the streaming calls: the audio up to `audio-stop`) has been sent.
    var isRequestSent: Bool { progress.isRequestSent }

    /// The next event; nil when the server closed the connection between events. A server `error` event
    /// is thrown as ``WyomingError/Code/serverError``.
    mutating func next() async throws -> WyomingEvent? {
        while true {
            let event = try decoder.next()
            progress.setInsideEvent(decoder.isInsideEvent)
            if let event {
                events += 1
                if events > decoder.limits.maxEventsPerCall {
                    throw WyomingError(.limitExceeded, "more than \(decoder.limits.maxEventsPerCall) events in one call (limit maxEventsPerCall)")
                }
                if event.type == "error" {
                    let code = event.data["code"]?.string.map { " (\($0))" } ?? ""
                    throw WyomingError(.serverError, "the server answered with an error\(code): \(event.data["text"]?.string ?? "no text")")
                }
                return event
            }
            let bytes: ByteBuffer?
            do {
                bytes = try await iterator.next()
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw WyomingError(.connectionClosed, "the connection failed while reading: \(error)")
            }
            guard let bytes else {
                if Task.isCancelled { throw CancellationError() }
                if decoder.isInsideEvent {
                    throw WyomingError(.connectionClosed, "the server closed the connection inside an event (\(decoder.bufferedBytes) bytes of it received)")
                }
                return nil
            }
            decoder.append(bytes.readableBytesView)
        }
    }

    /// The next event, or a `connectionClosed` error naming what the call waited for.
    mutating func expectEvent(_ waitingFor: String) async throws -> WyomingEvent {
        guard let event = try await next() else {
            throw WyomingError(.connectionClosed, "the server closed the connection before \(waitingFor)")
        }
        return event
    }
}
