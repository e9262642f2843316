import BrokerTestSupport
import Foundation
import HTTPTestSupport
import MLFake
import Testing

extension IntegrationSuite {
    /// The hub microphone behind a Wyoming wake-word server (`audio.wake.*`), through the daemon: the ALSA file
    /// plugin replays the room, `Tests/Wyoming/servers.py --mode wake` (the `wyoming` reference package) detects
    /// after a set amount of audio, the fake gRPC ML service answers the hub's dialog.
    @Suite struct WakeWordTests {
        typealias Mic = HubMicrophoneTests

        /// The microphone, the ML service and the wake-word server on `wakePort`, with the admin API.
        struct Hub {
            let voice: VoiceBed
            let ml: FakeMLService
            let admin: AdminClient
            let adminPort: Int

            var hubAnswers: [VoiceBed.Response] {
                voice.responses.messages.compactMap(VoiceBed.Response.init).filter { $0.topic == "device/hub-test/response" && $0.isAnswer }
            }

            func waitForHubAnswers(_ count: Int, timeout: Duration = .seconds(30)) async throws -> [VoiceBed.Response] {
                do {
                    _ = try await voice.responses.waitUntil("\(count) answer(s) to the hub", timeout: timeout) { messages in
                        messages.compactMap(VoiceBed.Response.init).filter { $0.topic == "device/hub-test/response" && $0.isAnswer }.count >= count
                    }
                } catch let error as HarnessError {
                    throw HarnessError("\(error)\n\(voice.bed.gateway.logTail(lines: 40))")
                }
                return hubAnswers
            }

            /// `/api/status`'s `wake` object.
            func wakeStatus() async throws -> [String: Any]? {
                JSON.object(try await admin.get("/api/status").body)?["wake"] as? [String: Any]
            }

            func waitForWakeStatus(_ what: String, timeout: Duration = .seconds(20), _ condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
                var last: [String: Any]?
                do {
                    try await Poll.until(what, timeout: timeout, every: .milliseconds(100)) {
                        last = try await wakeStatus()
                        return last.map(condition) ?? false
                    }
                } catch let error as HarnessError {
                    throw HarnessError("\(error); last wake status: \(last.map(JSON.line) ?? "none")\n\(voice.bed.gateway.logTail(lines: 30))")
                }
                return last!
            }

            func metric(_ name: String) async throws -> Double? {
                AdminClient.value(of: name, in: try await admin.get("/metrics").text)
            }
        }

        static func start(
            in sandbox: Sandbox, room samples: [Int16], wakePort: Int, extra: GatewayConfig = [:]
        ) async throws -> Hub {
            let ml = FakeMLService(name: "ml-wake")
            let port = try await ml.start()
            let (config, _) = try Mic.microphone(samples, in: sandbox)
            let adminPort = try FreePort.next()
            let overrides: GatewayConfig = [
                "admin.port": .int(adminPort),
                "audio.wake.endpoint": .string("wyoming://127.0.0.1:\(wakePort)"),
                "audio.wake.names": .raw(#"["hey_hub"]"#),
            ]
            let voice = try await VoiceBed.start(
                in: sandbox, ml: [ml], endpoints: [port], overrides: Mic.overrides(config, endpoint: port, extra: overrides.merging(extra)))
            try await voice.bed.gateway.waitForLog("microphone open")
            return Hub(voice: voice, ml: ml, admin: AdminClient(port: adminPort), adminPort: adminPort)
        }

        /// RMS of 16-bit little-endian PCM.
        static func rms(_ pcm: [UInt8]) -> Double {
            let levels = stride(from: 0, to: pcm.count - 1, by: 2).map { Double(Int16(bitPattern: UInt16(pcm[$0]) | UInt16(pcm[$0 + 1]) << 8)) }
            return (levels.reduce(0) { $0 + $1 * $1 } / Double(max(1, levels.count))).squareRoot()
        }

        @Test func aDetectionOpensAHubDialogAndTheStatusAndLiveShowIt() async throws {
            try await withSandbox { sandbox in
                let speech = try TestSpeech.read(TestSpeech.writeFile(in: sandbox, seconds: 1.2))
                // The detection comes after 1 s of audio, in the quiet before the speech; the segment then runs
                // through the speech and ends with it.
                let room = Mic.noise(seconds: 2.5, seed: 21) + speech + Mic.noise(seconds: 20, seed: 22)
                try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "1000"]) { peer in
                    let hub = try await Self.start(in: sandbox, room: room, wakePort: peer.port, extra: ["audio.vad.maxSegmentSeconds": 6])
                    let answers = try await hub.waitForHubAnswers(1)
                    #expect(answers.first?.type == "DIALOG_RESPONSE", "\(answers)")
                    let streams = hub.ml.streams.withLock { $0 }
                    #expect(streams.count == 1)
                    let pcm = streams.first?.chunks.flatMap { $0 } ?? []
                    // The speech reached the ML service (loud), after the quiet from the detection on.
                    #expect(Self.rms(pcm) > 1000, "rms \(Self.rms(pcm))")
                    #expect(streams.first?.config.deviceID == "hub-test")

                    let wake = try await hub.waitForWakeStatus("the detection in /api/status") { ($0["detections"] as? Int ?? 0) >= 1 }
                    #expect(wake["lastName"] as? String == "hey_hub", "the name asked for in detect: \(wake)")
                    #expect(wake["state"] as? String == "connected")
                    #expect(wake["mode"] as? String == "wake")
                    #expect(wake["address"] as? String == "127.0.0.1:\(peer.port)")
                    #expect(try await hub.metric(#"gateway_audio_segments_total{trigger="wake"}"#) == 1)
                    #expect(try await hub.metric(#"gateway_audio_wake_detections_total{name="hey_hub"}"#) == 1)
                    #expect(try await hub.metric(#"gateway_audio_segments_total{trigger="vad"}"#) ?? 0 == 0, "the speech itself opened nothing")

                    // /live's status messages carry it too.
                    try await RawHTTPConnection.with(port: hub.adminPort) { connection in
                        let reply = try await connection.request(
                            "/live", host: "127.0.0.1:\(hub.adminPort)",
                            headers: ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"])
                        #expect(reply.status == 101)
                        let frames = try await connection.read { String(decoding: $0, as: UTF8.self).contains(#""lastName":"hey_hub""#) }
                        #expect(String(decoding: frames, as: UTF8.self).contains(#""detections":1"#))
                    }
                    await hub.ml.stop()
                }
            }
        }

        @Test func speechWithoutTheWakeWordOpensNothing() async throws {
            try await withSandbox { sandbox in
                let speech = try TestSpeech.read(TestSpeech.writeFile(in: sandbox, seconds: 1.2))
                // Speech from 1 s to 2.2 s; the server detects only after 5 s of audio, in the quiet: that
                // detection is the sentinel (the microphone handles its frames in order, so a segment opened by
                // the speech would be an ML stream before it).
                let room = Mic.noise(seconds: 1, seed: 31) + speech + Mic.noise(seconds: 20, seed: 32)
                try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "5000"]) { peer in
                    let hub = try await Self.start(in: sandbox, room: room, wakePort: peer.port, extra: ["audio.vad.maxSegmentSeconds": 1])
                    _ = try await hub.waitForHubAnswers(1)
                    let streams = hub.ml.streams.withLock { $0 }
                    #expect(streams.count == 1, "only the detection opened a segment")
                    let pcm = streams.first?.chunks.flatMap { $0 } ?? []
                    #expect(Self.rms(pcm) < 300, "the quiet after the detection, not the speech: rms \(Self.rms(pcm))")
                    #expect(try await hub.metric(#"gateway_audio_segments_total{trigger="vad"}"#) ?? 0 == 0)
                    #expect(try await hub.metric(#"gateway_audio_segments_total{trigger="wake"}"#) == 1)
                    await hub.ml.stop()
                }
            }
        }

        @Test func bothModeLetsSpeechOpenASegmentToo() async throws {
            try await withSandbox { sandbox in
                let speech = try TestSpeech.read(TestSpeech.writeFile(in: sandbox, seconds: 1.2))
                let room = Mic.noise(seconds: 1, seed: 41) + speech + Mic.noise(seconds: 20, seed: 42)
                // A server that never detects: the speech alone opens the segment.
                try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "100000000"]) { peer in
                    let hub = try await Self.start(in: sandbox, room: room, wakePort: peer.port, extra: ["audio.wake.mode": "both"])
                    let answers = try await hub.waitForHubAnswers(1)
                    #expect(answers.first?.type == "DIALOG_RESPONSE")
                    let pcm = hub.ml.streams.withLock { $0 }.first?.chunks.flatMap { $0 } ?? []
                    #expect(Self.rms(pcm) > 2000, "the speech: rms \(Self.rms(pcm))")
                    #expect(try await hub.metric(#"gateway_audio_segments_total{trigger="vad"}"#) == 1)
                    let wake = try await hub.waitForWakeStatus("the server connected") { $0["state"] as? String == "connected" }
                    #expect(wake["mode"] as? String == "both")
                    #expect(wake["detections"] as? Int == 0)
                    await hub.ml.stop()
                }
            }
        }

        @Test func aDeadWakeServerIsReportedAndDetectionsWorkOnceItComesUp() async throws {
            try await withSandbox { sandbox in
                let wakePort = try FreePort.next()
                let hub = try await Self.start(
                    in: sandbox, room: Mic.noise(seconds: 60, seed: 51), wakePort: wakePort, extra: ["audio.vad.maxSegmentSeconds": 1])
                try await hub.voice.bed.gateway.waitForLog("the wake-word server cannot be used")
                let down = try await hub.waitForWakeStatus("the server down, with why") { $0["state"] as? String == "down" && $0["lastError"] != nil }
                #expect((down["lastError"] as? String ?? "").contains("connect"), "\(down)")
                #expect(try await hub.admin.get("/healthz").status == 200)
                _ = try await hub.admin.waitForMetric(#"gateway_audio_wake_connection_failures_total{reason="connectFailed"}"#) { $0 >= 1 }
                #expect(hub.ml.streamCount == 0, "no segment without the server in wake mode")

                try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "500"], port: wakePort) { _ in
                    // The backoff reaches the server within 30 s; its detection opens a (quiet) segment.
                    let wake = try await hub.waitForWakeStatus("a detection after the server came up", timeout: .seconds(45)) {
                        ($0["detections"] as? Int ?? 0) >= 1
                    }
                    #expect(wake["state"] as? String == "connected")
                    let answers = try await hub.waitForHubAnswers(1)
                    #expect(answers.first?.type == "DIALOG_RESPONSE")
                    try await hub.voice.bed.gateway.waitForLog("the wake-word server works again")
                }
                await hub.ml.stop()
            }
        }

        @Test(arguments: ["flood", "huge-length", "bad-json"])
        func aHostileWakeServerCostsReconnectsNeverMemory(kind: String) async throws {
            try await withSandbox { sandbox in
                try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "100", "--hostile", kind]) { peer in
                    let hub = try await Self.start(in: sandbox, room: Mic.noise(seconds: 60, seed: 61), wakePort: peer.port)
                    let pid = try #require(hub.voice.bed.gateway.pid)
                    let failures = { () async throws -> Double in
                        let metrics = try await hub.admin.get("/metrics").text
                        return metrics.split(separator: "\n").filter { $0.hasPrefix("gateway_audio_wake_connection_failures_total{") }
                            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
                    }
                    try await Poll.until("two failed conversations with the \(kind) server", timeout: .seconds(30), every: .milliseconds(200)) {
                        try await failures() >= 2
                    }
                    let rss = try UnitLimitsTests.usage(of: pid).rss
                    #expect(rss < 200 * 1024 * 1024, "RSS \(rss / 1024 / 1024) MiB")
                    #expect(try await hub.admin.get("/healthz").status == 200)
                    #expect(hub.voice.bed.gateway.isRunning)
                    let wake = try await hub.wakeStatus()
                    #expect(wake?["lastError"] is String, "\(wake ?? [:])")
                    #expect(hub.ml.streamCount == 0, "a hostile server's answers open nothing")
                    await hub.ml.stop()
                }
            }
        }
    }
}
