import BrokerTestSupport
import Foundation
import MLFake
import Testing

extension IntegrationSuite {
    /// The hub's own microphone through the daemon: real ALSA (the `file` plugin replaying a PCM
    /// file the test writes), voice-activity detection, Opus, the ML service over gRPC, and the
    /// answer on `device/{hubId}/response`.
    @Suite struct HubMicrophoneTests {
        /// Quiet room noise (about -50 dBFS), deterministic.
        static func noise(seconds: Double, seed: UInt64) -> [Int16] {
            var state = seed
            return (0..<Int(seconds * 16000)).map { _ in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Int16(truncatingIfNeeded: Int(state >> 33) % 200 - 100)
            }
        }

        /// Writes `samples` and an ALSA configuration defining `pcm.hubmic` over them.
        static func microphone(_ samples: [Int16], in sandbox: Sandbox) throws -> (config: URL, seconds: Double) {
            let raw = sandbox.url("mic.raw")
            try samples.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: raw)
            let config = sandbox.url("asound.conf")
            let played = sandbox.url("played.raw")
            try """
            pcm.hubmic { type file; slave.pcm "null"; file "/dev/null"; infile "\(raw.path)"; format "raw" }
            pcm.hubspk { type file; slave.pcm "null"; file "\(played.path)"; format "raw" }
            """.write(to: config, atomically: true, encoding: .utf8)
            return (config, Double(samples.count) / 16000)
        }

        static func overrides(_ config: URL, endpoint: Int, extra: GatewayConfig = [:]) -> GatewayConfig {
            let base: GatewayConfig = [
                "audio.enabled": true,
                "audio.device": "hubmic",
                "audio.alsaConfigFile": .string(config.path),
                "audio.userId": "user-hub",
                "audio.playbackDevice": "hubspk",
                "ml.codec": "pcm_s16le",
            ]
            return base.merging(extra)
        }

        @Test func twoUtterancesBecomeTwoDialogsOfTheHub() async throws {
            try await withSandbox { sandbox in
                let ml = FakeMLService(name: "ml-mic")
                let port = try await ml.start()
                let speech = try TestSpeech.read(TestSpeech.writeFile(in: sandbox, seconds: 1.2))
                let samples = Self.noise(seconds: 1.0, seed: 1) + speech + Self.noise(seconds: 1.5, seed: 2) + speech + Self.noise(seconds: 2.0, seed: 3)
                let (config, _) = try Self.microphone(samples, in: sandbox)
                let voice = try await VoiceBed.start(in: sandbox, ml: [ml], endpoints: [port], overrides: Self.overrides(config, endpoint: port))
                try await voice.bed.gateway.waitForLog("microphone open")

                let answers = try await voice.responses.waitUntil("two answers to the hub", timeout: .seconds(30)) { messages in
                    messages.compactMap(VoiceBed.Response.init).filter { $0.topic == "device/hub-test/response" && $0.isAnswer }.count >= 2
                }.compactMap(VoiceBed.Response.init).filter { $0.topic == "device/hub-test/response" && $0.isAnswer }
                #expect(answers.allSatisfy { $0.type == "DIALOG_RESPONSE" }, "\(answers)")

                let streams = ml.streams.withLock { $0 }
                #expect(streams.count == 2)
                for stream in streams {
                    #expect(stream.config.deviceID == "hub-test")
                    #expect(stream.config.codec == "pcm_s16le")
                    // Speech 1.2 s + pre-roll 0.2 s + hangover 0.3 s, give or take the detector's
                    // start (100 ms) and a frame either side.
                    let seconds = Double(stream.chunks.reduce(0) { $0 + $1.count }) / 2 / 16000
                    #expect(seconds > 1.2 && seconds < 1.9, "segment of \(seconds) s")
                    // What reached the ML service is the speech (Opus decoded): loud, not the room.
                    let pcm = stream.chunks.flatMap { $0 }
                    let levels = stride(from: 0, to: pcm.count - 1, by: 2).map { Double(Int16(bitPattern: UInt16(pcm[$0]) | UInt16(pcm[$0 + 1]) << 8)) }
                    let rms = (levels.reduce(0) { $0 + $1 * $1 } / Double(max(1, levels.count))).squareRoot()
                    #expect(rms > 2000, "rms \(rms)")
                }
                let intents = ml.intents.withLock { $0 }
                #expect(intents.count == 2)
                #expect(intents.allSatisfy { $0.request.userID == "user-hub" && $0.request.deviceID == "hub-test" })

                // The answers were chimed on the playback device: the two rising notes (250 ms) per
                // answer, written through ALSA into the file the test's PCM names.
                let played = sandbox.url("played.raw")
                let deadline = ContinuousClock.now + .seconds(10)
                func playedBytes() -> Int { (try? Data(contentsOf: played).count) ?? 0 }
                while playedBytes() < 8000, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                let chime = try TestSpeech.read(played)
                #expect(chime.count >= 4000, "played \(chime.count) samples")
                let loud = chime.filter { abs(Int($0)) > 4000 }.count
                #expect(loud > chime.count / 4, "a tone, not silence")
            }
        }

        @Test func theAnswerIsSpokenWithTheReplyCommandAndAFailingCommandFallsBackToTheChime() async throws {
            try await withSandbox { sandbox in
                let ml = FakeMLService(name: "ml-tts")
                let port = try await ml.start()
                let (config, _) = try Self.microphone(Self.noise(seconds: 8, seed: 5), in: sandbox)
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port],
                    overrides: Self.overrides(config, endpoint: port, extra: ["audio.replyCommand": .raw(#"["espeak-ng", "--stdout", "--", "{text}"]"#)]))
                try await voice.bed.gateway.waitForLog("microphone open")
                let played = sandbox.url("played.raw")
                func playedBytes() -> Int { (try? Data(contentsOf: played).count) ?? 0 }

                try await DeviceClient.publishOnce(
                    topic: "hub/hub-test/listen", payload: Data(#"{"seconds": 1}"#.utf8), brokerPort: voice.bed.deviceBroker.port,
                    in: voice.bed.sandbox.directory)
                _ = try await voice.responses.waitUntil("the hub's answer", timeout: .seconds(20)) { messages in
                    messages.compactMap(VoiceBed.Response.init).contains { $0.topic == "device/hub-test/response" && $0.isAnswer }
                }
                // "OK from ml-tts", spoken by espeak-ng (22,050 Hz): longer than the 250 ms chime.
                var deadline = ContinuousClock.now + .seconds(15)
                while playedBytes() < 22050, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                let speech = try TestSpeech.read(played)
                #expect(speech.count > 22050 / 2, "played \(speech.count) samples")
                #expect(speech.filter { abs(Int($0)) > 2000 }.count > speech.count / 20, "speech, not silence")

                // A command that fails: the chime plays instead, and the log says why.
                _ = try await voice.bed.gateway.terminate()
                try voice.bed.gateway.rewrite(["audio.replyCommand": .raw(#"["/bin/false", "--", "{text}"]"#)])
                try FileManager.default.removeItem(at: played)
                try await voice.bed.gateway.start()
                try await voice.bed.gateway.waitForLog("microphone open")
                try await DeviceClient.publishOnce(
                    topic: "hub/hub-test/listen", payload: Data(#"{"seconds": 1}"#.utf8), brokerPort: voice.bed.deviceBroker.port,
                    in: voice.bed.sandbox.directory)
                try await voice.bed.gateway.waitForLog("cannot speak the reply; playing the chime instead")
                deadline = ContinuousClock.now + .seconds(10)
                while playedBytes() < 8000, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                #expect(playedBytes() == 8000, "the 250 ms chime at 16 kHz")
            }
        }

        /// Issue 12: an ML reply is content, and `-f/etc/edge-gateway/secrets.env` as the first
        /// argument of espeak-ng would read the secrets aloud. A recording text-to-speech program
        /// shows where the reply lands: on standard input without `{text}`, after `--` with it
        /// (`{text}` anywhere an option could stand is refused: CheckConfigTests).
        @Test func aReplyStartingWithADashNeverBecomesAnOptionOfTheReplyCommand() async throws {
            try await withSandbox { sandbox in
                var script = FakeMLService.Script()
                script.replyText = "-f\(sandbox.url("secrets.env").path)"
                let ml = FakeMLService(name: "ml-dash", script: script)
                let port = try await ml.start()
                try "MQTT_PASSWORD=do-not-say\n".write(to: sandbox.url("secrets.env"), atomically: true, encoding: .utf8)
                // A text-to-speech stand-in: records argv and stdin, writes 0.1 s of WAV.
                let recorder = sandbox.url("tts.py")
                let record = sandbox.url("tts-record.json")
                try """
                import json, struct, sys
                json.dump({"argv": sys.argv[1:], "stdin": sys.stdin.read()}, open(\(JSON.line(record.path)), "w"))
                pcm = b"\\x00\\x10" * 1600
                sys.stdout.buffer.write(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", len(pcm)) + pcm)
                """.write(to: recorder, atomically: true, encoding: .utf8)
                let (config, _) = try Self.microphone(Self.noise(seconds: 30, seed: 11), in: sandbox)
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port],
                    overrides: Self.overrides(config, endpoint: port, extra: ["audio.replyCommand": .raw("[\"/usr/bin/python3\", \"\(recorder.path)\"]")]))
                try await voice.bed.gateway.waitForLog("microphone open")

                func speakAndRead() async throws -> [String: Any] {
                    try? FileManager.default.removeItem(at: record)
                    try await DeviceClient.publishOnce(
                        topic: "hub/hub-test/listen", payload: Data(#"{"seconds": 1}"#.utf8), brokerPort: voice.bed.deviceBroker.port,
                        in: voice.bed.sandbox.directory)
                    let deadline = ContinuousClock.now + .seconds(20)
                    while ContinuousClock.now < deadline {
                        if let data = try? Data(contentsOf: record), let json = JSON.object(data) { return json }
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    throw HarnessError("the reply command never ran\n\(voice.bed.gateway.logTail(lines: 40))")
                }

                // Without {text}: the reply arrives on standard input, never in argv.
                let onStdin = try await speakAndRead()
                #expect(onStdin["argv"] as? [String] == [], "\(onStdin)")
                #expect(onStdin["stdin"] as? String == script.replyText! + "\n", "\(onStdin)")

                // With {text} after "--": an operand, whatever it starts with.
                _ = try await voice.bed.gateway.terminate()
                try voice.bed.gateway.rewrite(["audio.replyCommand": .raw("[\"/usr/bin/python3\", \"\(recorder.path)\", \"--\", \"{text}\"]")])
                try await voice.bed.gateway.start()
                try await voice.bed.gateway.waitForLog("microphone open")
                let afterDashes = try await speakAndRead()
                #expect(afterDashes["argv"] as? [String] == ["--", script.replyText!], "\(afterDashes)")
                #expect(afterDashes["stdin"] as? String == "", "\(afterDashes)")
                await ml.stop()
            }
        }

        @Test func pushToTalkOpensASegmentWithoutSpeech() async throws {
            try await withSandbox { sandbox in
                let ml = FakeMLService(name: "ml-ptt")
                let port = try await ml.start()
                let (config, _) = try Self.microphone(Self.noise(seconds: 6, seed: 9), in: sandbox)
                let voice = try await VoiceBed.start(in: sandbox, ml: [ml], endpoints: [port], overrides: Self.overrides(config, endpoint: port))
                try await voice.bed.gateway.waitForLog("microphone open")

                // The push-to-talk is the sentinel: the microphone handles its frames in order, so a
                // segment started by the room noise before it would be an ML stream of its own.
                try await DeviceClient.publishOnce(
                    topic: "hub/hub-test/listen", payload: Data(#"{"seconds": 1}"#.utf8), brokerPort: voice.bed.deviceBroker.port,
                    in: voice.bed.sandbox.directory)
                _ = try await voice.responses.waitUntil("the hub's answer", timeout: .seconds(20)) { messages in
                    messages.compactMap(VoiceBed.Response.init).contains { $0.topic == "device/hub-test/response" && $0.isAnswer }
                }
                #expect(ml.streamCount == 1, "room noise alone starts nothing")
                let stream = try #require(ml.streams.withLock { $0.first })
                let seconds = Double(stream.chunks.reduce(0) { $0 + $1.count }) / 2 / 16000
                // Counted in audio frames, so exactly the second asked for, however busy the machine.
                #expect(seconds == 1.0, "push-to-talk segment of \(seconds) s")
            }
        }

        @Test func aMissingCaptureDeviceIsRetriedWhileEverythingElseRuns() async throws {
            try await withSandbox { sandbox in
                let port = try FreePort.next()
                let bed = try await TestBed.start(in: sandbox, overrides: [
                    "audio.enabled": true, "audio.device": "hw:9,0", "admin.port": .int(port),
                ])
                try await bed.gateway.waitForLog("the microphone cannot be used; retrying")
                #expect(bed.gateway.logTail(lines: 200).contains("arecord -L"))
                try await bed.device("dev-m").publish([DeviceEvent(deviceId: "dev-m", seq: 0)])
                _ = try await bed.waitForUpstream(count: 1)
                let admin = AdminClient(port: port)
                _ = try await admin.waitForMetric("gateway_audio_capture_errors_total") { $0 >= 2 }
                #expect(try await admin.get("/readyz").status == 200)
            }
        }
    }
}
