import BrokerTestSupport
import Foundation
import MLFake
import Testing

extension IntegrationSuite {
    /// Device voice dialogs over Wyoming (CONTRACTS.md §8) end to end: devices speaking Opus or
    /// PCM over MQTT, the daemon, the protocol's reference servers (Tests/Wyoming/servers.py) as
    /// `wyoming://` entries of `ml.endpoints`, alone and beside a gRPC endpoint.
    @Suite struct WyomingDialogTests {
        static func entries(_ ports: [Int]) -> YAMLScalar {
            .raw("[" + ports.map { "\"wyoming://127.0.0.1:\($0)\"" }.joined(separator: ", ") + "]")
        }

        /// Waits until `/api/ml/endpoints` shows every endpoint in `ports` offering something.
        static func waitForDescribe(_ admin: AdminClient, _ ports: [Int]) async throws -> [[String: Any]] {
            var endpoints: [[String: Any]] = []
            try await Poll.until("the Wyoming servers described themselves", asking: {
                endpoints = try await admin.get("/api/ml/endpoints").json as? [[String: Any]] ?? []
                return ports.allSatisfy { port in
                    endpoints.contains { $0["endpoint"] as? String == "wyoming://127.0.0.1:\(port)" && !(($0["offers"] as? [String]) ?? []).isEmpty }
                }
            })
            return endpoints
        }

        @Test func opusAndPCMDevicesAreAnsweredOverWyomingAndTheEndpointIsNamedUpstream() async throws {
            try await withSandbox { sandbox in
                try await WyomingPeer.with(["--mode", "asr", "--stream"]) { asr in
                    try await WyomingPeer.with(["--mode", "intent"]) { intent in
                        let adminPort = try FreePort.next()
                        let voice = try await VoiceBed.start(
                            in: sandbox, ml: [], endpoints: [],
                            overrides: ["ml.endpoints": Self.entries([asr.port, intent.port]), "admin.port": .int(adminPort)])
                        let admin = AdminClient(port: adminPort)
                        let endpoints = try await Self.waitForDescribe(admin, [asr.port, intent.port])
                        let asrStatus = try #require(endpoints.first { $0["endpoint"] as? String == "wyoming://127.0.0.1:\(asr.port)" })
                        #expect(asrStatus["offers"] as? [String] == ["transcription"])
                        let wyoming = try #require(asrStatus["wyoming"] as? [String: Any])
                        #expect(wyoming["services"] as? [String] == ["asr"])
                        #expect(wyoming["languages"] as? [String] == ["de", "en"])
                        #expect(wyoming["streamsTranscripts"] as? Bool == true)
                        let intentStatus = try #require(endpoints.first { $0["endpoint"] as? String == "wyoming://127.0.0.1:\(intent.port)" })
                        #expect(intentStatus["offers"] as? [String] == ["intent"])

                        let device = try await voice.device("speaker-w1")
                        for (codec, frames) in [("opus", try voice.opusFrames), ("pcm_s16le", TestSpeech.pcmFrames(voice.speech))] {
                            let session = try await device.speak(frames: frames, codec: codec)
                            let answer = try await voice.answer(device: "speaker-w1", session: session)
                            #expect(answer.type == "DIALOG_RESPONSE", "\(codec): \(answer)")
                            #expect(answer.payload["transcript"] as? String == "turn on the kitchen light")
                            #expect(answer.payload["intent"] as? String == "HassTurnOn")
                            #expect(answer.payload["entities"] as? [String: String] == ["name": "kitchen light"])
                            #expect(answer.payload["replyText"] as? String == "Turned on the kitchen light")
                            #expect((answer.payload["confidence"] as? Double) == 1)
                            // The server's transcript-chunks came first as partials of this session.
                            let partials = voice.responses(for: "speaker-w1").filter {
                                $0.type == "TRANSCRIPT_PARTIAL" && $0.session == session.uuidString.lowercased()
                            }
                            #expect(partials.map { $0.payload["text"] as? String } == ["turn ", "on ", "the ", "kitchen ", "light "], "\(partials)")
                        }
                        let events = try await voice.bed.waitForUpstream(count: 2) { $0.type == "DialogCompleted" }
                        for event in events where event.type == "DialogCompleted" {
                            let data = try #require(event.data as? [String: Any])
                            #expect(data["mlEndpoint"] as? String == "wyoming://127.0.0.1:\(asr.port)")
                            #expect(data["outcome"] as? String == "answered")
                        }
                        await device.close()
                    }
                }
            }
        }

        @Test func aPCMDeviceSAudioStaysPCMWhenOnlyWyomingTranscribes() async throws {
            try await withSandbox { sandbox in
                // The transcript names the format and length the server got: 1.2 s at 16 kHz mono, not Opus decoded.
                try await WyomingPeer.with(["--mode", "all", "--transcript", "{format} {bytes}"]) { peer in
                    let adminPort = try FreePort.next()
                    let voice = try await VoiceBed.start(
                        in: sandbox, ml: [], endpoints: [], overrides: ["ml.endpoints": Self.entries([peer.port]), "admin.port": .int(adminPort)])
                    _ = try await Self.waitForDescribe(AdminClient(port: adminPort), [peer.port])
                    let device = try await voice.device("speaker-w2")
                    let frames = TestSpeech.pcmFrames(voice.speech)
                    let session = try await device.speak(frames: frames, codec: "pcm_s16le")
                    let answer = try await voice.answer(device: "speaker-w2", session: session)
                    #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")
                    #expect(answer.payload["transcript"] as? String == "16000 2 1 \(frames.map(\.count).reduce(0, +))", "PCM passed through unchanged")
                    #expect(answer.payload["intent"] as? String == "unknown", "not a phrase the server knows: not-recognized")
                    #expect(answer.payload["replyText"] as? String == "Sorry, I couldn't understand that")
                    await device.close()
                }
            }
        }

        @Test func aDeadWyomingEndpointIsSkippedAndItsBreakerOpens() async throws {
            try await withSandbox { sandbox in
                try await WyomingPeer.with(["--mode", "all"]) { peer in
                    let dead = try FreePort.next()
                    let adminPort = try FreePort.next()
                    let voice = try await VoiceBed.start(
                        in: sandbox, ml: [], endpoints: [],
                        overrides: [
                            "ml.endpoints": Self.entries([dead, peer.port]), "admin.port": .int(adminPort),
                            "ml.breaker.minimumCalls": 2, "ml.balancing": "roundRobin",
                        ])
                    _ = try await Self.waitForDescribe(AdminClient(port: adminPort), [peer.port])
                    let device = try await voice.device("speaker-w3")
                    for _ in 0..<3 {
                        let session = try await device.speak(frames: try voice.opusFrames, interval: .zero)
                        let answer = try await voice.answer(device: "speaker-w3", session: session)
                        #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")
                        #expect(answer.payload["intent"] as? String == "HassTurnOn")
                    }
                    // Its describe fails at every health check, which counts against its breaker.
                    try await voice.bed.gateway.waitForLog("ML endpoint circuit breaker open", timeout: .seconds(15))
                    #expect(voice.bed.gateway.currentRunLog.contains("ml.endpoint=wyoming://127.0.0.1:\(dead)"))
                    let endpoints = try #require(try await AdminClient(port: adminPort).get("/api/ml/endpoints").json as? [[String: Any]])
                    let deadStatus = try #require(endpoints.first { $0["endpoint"] as? String == "wyoming://127.0.0.1:\(dead)" })
                    #expect(deadStatus["offers"] as? [String] == [])
                    #expect(deadStatus["health"] as? String == "unreachable")
                    #expect(deadStatus["wyoming"] == nil, "never described")
                    await device.close()
                }
            }
        }

        @Test func aServerThatFallsSilentOpensItsBreakerAndItsReturnClosesIt() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let adminPort = try FreePort.next()
                let voice = try await WyomingPeer.with(["--mode", "all"], port: port) { _ in
                    let voice = try await VoiceBed.start(
                        in: sandbox, ml: [], endpoints: [],
                        overrides: [
                            "ml.endpoints": Self.entries([port]), "admin.port": .int(adminPort), "ml.breaker.minimumCalls": 1,
                            "ml.breaker.openSeconds": 1, "ml.healthCheckIntervalSeconds": 3600, "ml.wyoming.transcriptTimeoutMs": 500,
                        ])
                    _ = try await Self.waitForDescribe(AdminClient(port: adminPort), [port])
                    return voice
                }
                let device = try await voice.device("speaker-w4")
                let frames = try voice.opusFrames
                // The same port, a server that reads everything and never answers: the call's deadline fails it.
                try await WyomingPeer.with(["--mode", "all", "--hostile", "silent"], port: port) { _ in
                    let session = try await device.speak(frames: frames, interval: .zero)
                    let failed = try await voice.answer(device: "speaker-w4", session: session)
                    #expect(failed.type == "ERROR", "\(failed)")
                    #expect((failed.payload["message"] as? String)?.contains("deadline") == true, "\(failed)")
                    try await voice.bed.gateway.waitForLog("ML endpoint circuit breaker open")
                    let refused = try await voice.answer(device: "speaker-w4", session: try await device.speak(frames: frames, interval: .zero))
                    #expect((refused.payload["message"] as? String)?.contains("circuit breaker is open") == true, "\(refused)")
                }
                // A working server again: after the cool-down a probe closes the breaker.
                try await WyomingPeer.with(["--mode", "all"], port: port) { _ in
                    var answered: VoiceBed.Response?
                    for _ in 0..<20 where answered?.type != "DIALOG_RESPONSE" {
                        try await Task.sleep(for: .milliseconds(500))
                        answered = try await voice.answer(device: "speaker-w4", session: try await device.speak(frames: frames, interval: .zero))
                    }
                    #expect(answered?.type == "DIALOG_RESPONSE", "\(String(describing: answered))")
                    try await voice.bed.gateway.waitForLog("ML endpoint circuit breaker closed")
                }
                await device.close()
            }
        }

        @Test func wyomingTranscriptionWithGRPCIntentAndTheReverse() async throws {
            try await withSandbox { sandbox in
                var script = FakeMLService.Script()
                script.transcript = "what time is it"
                let grpc = FakeMLService(name: "grpc", script: script)
                let grpcPort = try await grpc.start()
                try await WyomingPeer.with(["--mode", "all"]) { peer in
                    let adminPort = try FreePort.next()
                    let voice = try await VoiceBed.start(
                        in: sandbox, ml: [grpc], endpoints: [],
                        overrides: [
                            "ml.endpoints": .raw("[\"wyoming://127.0.0.1:\(peer.port)\", \"127.0.0.1:\(grpcPort)\"]"),
                            "admin.port": .int(adminPort), "ml.transcription": "wyoming", "ml.intent": "grpc",
                        ])
                    _ = try await Self.waitForDescribe(AdminClient(port: adminPort), [peer.port])
                    let device = try await voice.device("speaker-w5")
                    let first = try await voice.answer(device: "speaker-w5", session: try await device.speak(frames: try voice.opusFrames))
                    #expect(first.payload["transcript"] as? String == "turn on the kitchen light", "Wyoming transcribed: \(first)")
                    #expect(first.payload["replyText"] as? String == "OK from grpc", "gRPC analysed: \(first)")
                    #expect(grpc.streamCount == 0)
                    #expect(grpc.intentCount == 1)

                    try voice.bed.gateway.reload(["ml.transcription": "grpc", "ml.intent": "wyoming"])
                    try await voice.bed.gateway.waitForLog("configuration reloaded")
                    let second = try await voice.answer(device: "speaker-w5", session: try await device.speak(frames: try voice.opusFrames))
                    #expect(second.payload["transcript"] as? String == "what time is it", "gRPC transcribed: \(second)")
                    #expect(second.payload["intent"] as? String == "HassGetCurrentTime", "Wyoming analysed: \(second)")
                    #expect(second.payload["replyText"] as? String == "It is noon")
                    #expect(grpc.streamCount == 1)
                    #expect(grpc.intentCount == 1)
                    let events = try await voice.bed.waitForUpstream(count: 2) { $0.type == "DialogCompleted" }
                    let served = events.compactMap { ($0.data as? [String: Any])?["mlEndpoint"] as? String }
                    #expect(Set(served) == ["wyoming://127.0.0.1:\(peer.port)", "127.0.0.1:\(grpcPort)"])
                    await device.close()
                }
                await grpc.stop()
            }
        }

        @Test(arguments: ["huge-length", "bad-json"])
        func aHostileServerCostsARetryOnAnotherEndpointNeverACrash(hostile: String) async throws {
            try await withSandbox { sandbox in
                try await WyomingPeer.with(["--mode", "all", "--hostile", hostile, "--honest-describe"]) { bad in
                    try await WyomingPeer.with(["--mode", "all"]) { good in
                        let adminPort = try FreePort.next()
                        let voice = try await VoiceBed.start(
                            in: sandbox, ml: [], endpoints: [],
                            overrides: [
                                "ml.endpoints": Self.entries([bad.port, good.port]), "admin.port": .int(adminPort),
                                "ml.balancing": "roundRobin", "ml.breaker.minimumCalls": 50,
                            ])
                        _ = try await Self.waitForDescribe(AdminClient(port: adminPort), [bad.port, good.port])
                        let device = try await voice.device("speaker-w6")
                        for _ in 0..<4 {
                            let answer = try await voice.answer(device: "speaker-w6", session: try await device.speak(frames: try voice.opusFrames, interval: .zero))
                            #expect(answer.type == "DIALOG_RESPONSE", "\(hostile): \(answer)")
                            #expect(answer.payload["intent"] as? String == "HassTurnOn")
                        }
                        try await voice.bed.gateway.waitForLog("wyoming call failed: the server broke the protocol or a limit")
                        #expect(voice.bed.gateway.currentRunLog.contains("transcription failed before any result; moving it to another ML endpoint"))
                        let metrics = try await AdminClient(port: adminPort).get("/metrics").text
                        #expect(metrics.contains("gateway_wyoming_calls_failed_total"), "counted")
                        #expect(voice.bed.gateway.isRunning)
                        await device.close()
                    }
                }
            }
        }
    }
}
