import NIOCore
import NIOPosix
import Synchronization
import Wyoming

/// A Wyoming ASR + intent server that answers at once (CONTRACTS.md §8), for the bench's Wyoming section: the
/// counterpart of `FakeMLService` for gRPC, on the same clock as the devices. It records when each audio chunk
/// of a `transcribe` arrived and when each `intent` was written, so "last frame -> server" and "server answer ->
/// device" need no clock synchronisation. Every transcript is `transcript`, every intent `LightOn`.
final class WyomingBenchServer: Sendable {
    /// One `transcribe` conversation: arrival times of its chunks and the PCM bytes it brought.
    struct Stream: Sendable {
        var arrivals: [ContinuousClock.Instant] = []
        var bytes = 0
        var rate = 0
    }

    let transcript: String
    /// Finished transcriptions in the order their `audio-stop` arrived.
    let streams = Mutex<[Stream]>([])
    /// When each `intent` answer was written, in order.
    let intents = Mutex<[ContinuousClock.Instant]>([])
    private let server = Mutex<Task<Void, Never>?>(nil)
    private let channel = Mutex<(any Channel)?>(nil)

    init(transcript: String = "turn on the kitchen light") {
        self.transcript = transcript
    }

    /// Listens on a free loopback port; returns it.
    func start() async throws -> Int {
        let bound = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        channel.withLock { $0 = bound.channel }
        let port = bound.channel.localAddress?.port ?? 0
        let task = Task<Void, Never> {
            _ = try? await bound.executeThenClose { inbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    } catch {}
                }
            }
        }
        server.withLock { $0 = task }
        return port
    }

    func stop() async {
        let (bound, task) = (channel.withLock { $0 }, server.withLock { $0 })
        try? await bound?.close()
        task?.cancel()
        await task?.value
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>) async {
        try? await connection.executeThenClose { inbound, outbound in
            var decoder = WyomingDecoder()
            var stream: Stream?
            for try await buffer in inbound {
                let now = ContinuousClock.now
                decoder.append(buffer.readableBytesView)
                while let event = try decoder.next() {
                    switch event.type {
                    case "describe":
                        try await outbound.write(ByteBuffer(bytes: try Self.info.encoded()))
                    case "transcribe":
                        stream = Stream()
                    case "audio-start":
                        stream?.rate = event.data["rate"]?.int ?? 0
                    case "audio-chunk":
                        stream?.arrivals.append(now)
                        stream?.bytes += event.payload.count
                    case "audio-stop":
                        if let finished = stream { streams.withLock { $0.append(finished) } }
                        stream = nil
                        let answer = WyomingEvent(type: "transcript", data: ["text": .string(transcript), "language": "en"])
                        try await outbound.write(ByteBuffer(bytes: try answer.encoded()))
                    case "recognize":
                        let answer = WyomingEvent(type: "intent", data: [
                            "name": "LightOn", "entities": [["name": "area", "value": "kitchen"]],
                            "text": "Turned on the kitchen light",
                        ])
                        try await outbound.write(ByteBuffer(bytes: try answer.encoded()))
                        intents.withLock { $0.append(.now) }
                    default:
                        break
                    }
                }
            }
        }
    }

    private static let info = WyomingEvent(type: "info", data: [
        "asr": [[
            "name": "bench-asr", "installed": true, "attribution": ["name": "bench", "url": ""],
            "models": [["name": "bench", "languages": ["en"], "installed": true, "attribution": ["name": "bench", "url": ""]]],
        ]],
        "intent": [[
            "name": "bench-intent", "installed": true, "attribution": ["name": "bench", "url": ""],
            "models": [["name": "bench", "languages": ["en"], "installed": true, "attribution": ["name": "bench", "url": ""]]],
        ]],
    ])
}
