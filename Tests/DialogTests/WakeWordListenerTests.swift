import BrokerTestSupport
import Dialog
import Logging
import Testing
import Wyoming

/// ``WakeWordListener`` against `Tests/Wyoming/servers.py` (the `wyoming` reference package) without a daemon,
/// where audio can be offered faster than real time.
@Suite struct WakeWordListenerTests {
    static func listener(port: Int, bufferMs: Int = 100) -> WakeWordListener {
        var configuration = WakeWordConfiguration()
        configuration.host = "127.0.0.1"
        configuration.port = port
        configuration.mode = .wake
        configuration.bufferMs = bufferMs
        return WakeWordListener(
            configuration: configuration, sampleRate: 16_000, framesPerSecond: 50,
            timeouts: WyomingTimeouts(connect: .seconds(2), call: .seconds(1)), logger: Logger(label: "test.wake"))
    }

    /// `audio.wake.bufferMs`: a server that stops reading backs the socket up; what waits for it stays within
    /// the buffer (the oldest dropped and counted), and the stuck write fails the conversation at the deadline.
    @Test(.timeLimit(.minutes(1))) func aServerThatStopsReadingCostsDroppedAudioNotMemory() async throws {
        try await WyomingPeer.with(["--mode", "wake", "--hostile", "stall"]) { peer in
            let listener = Self.listener(port: peer.port)
            let run = Task { await listener.run() }
            defer { run.cancel() }
            _ = await listener.state.first { $0.connected }
            let frame = [Int16](repeating: 1000, count: 320)
            // Audio offered far faster than real time (about 30 MB/s) until the socket backs up and the stuck write
            // ends the conversation at the call deadline (1 s): more than the kernel's buffers and the 100 ms
            // buffer (5 frames) hold.
            var offered = 0
            while listener.state.current.lastError == nil {
                listener.offer(frame)
                offered += 1
                if offered % 50 == 0 { try await Task.sleep(for: .milliseconds(1)) }
            }
            #expect(listener.droppedFrames > 0, "offered \(offered)")
            let error = listener.state.current.lastError ?? ""
            #expect(error.contains("stopped reading"), "\(error)")
        }
    }

    @Test(.timeLimit(.minutes(1))) func aDetectionIsHandedOverOnceWithItsName() async throws {
        try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "200"]) { peer in
            let listener = Self.listener(port: peer.port, bufferMs: 2000)
            let run = Task { await listener.run() }
            defer { run.cancel() }
            _ = await listener.state.first { $0.connected }
            #expect(listener.takeDetection() == nil)
            for _ in 0..<20 { listener.offer([Int16](repeating: 0, count: 320)) }  // 400 ms
            let heard = await listener.state.first { $0.detections >= 1 }
            // Without audio.wake.names the server's default model (servers.py: ok_nabu).
            #expect(heard?.lastDetectionName == "ok_nabu")
            #expect(listener.takeDetection() == "ok_nabu")
            #expect(listener.takeDetection() == nil, "taken once")
        }
    }
}
