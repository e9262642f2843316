import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The whole local voice path with nothing but Wyoming servers (the `wyoming` reference package's, from
    /// Tests/Wyoming/servers.py) around the daemon, as README "Local voice with Home Assistant's servers" sets it
    /// up: the hub microphone (ALSA file plugin) behind a wake-word server; the detection opens a segment; its
    /// audio goes to a Wyoming ASR server, the transcript to a Wyoming intent server; the reply is spoken through
    /// a Wyoming TTS server (espeak-ng) on the playback device, whose output the test reads back.
    @Suite struct LocalVoiceTests {
        typealias Mic = HubMicrophoneTests

        @Test func theHubWokenByItsWakeWordIsAnsweredAloudWithNothingButWyomingServers() async throws {
            try await withSandbox { sandbox in
                let speech = try TestSpeech.read(TestSpeech.writeFile(in: sandbox, seconds: 1.2))
                // The detection comes after 2 s of room noise; the speech follows; the segment ends with it.
                let room = Mic.noise(seconds: 3, seed: 31) + speech + Mic.noise(seconds: 30, seed: 32)
                let (alsa, _) = try Mic.microphone(room, in: sandbox)
                try await WyomingPeer.with(["--mode", "asr", "--stream"]) { asr in
                    try await WyomingPeer.with(["--mode", "intent"]) { intent in
                        try await WyomingPeer.with(["--mode", "tts"]) { tts in
                            try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "2000"]) { wake in
                                let adminPort = try FreePort.next()
                                let extra: GatewayConfig = [
                                    "admin.port": .int(adminPort),
                                    "ml.endpoints": .raw(#"["wyoming://127.0.0.1:\#(asr.port)", "wyoming://127.0.0.1:\#(intent.port)"]"#),
                                    "audio.wake.endpoint": .string("wyoming://127.0.0.1:\(wake.port)"),
                                    "audio.wake.names": .raw(#"["ok_nabu"]"#),
                                    "audio.tts": .string("wyoming://127.0.0.1:\(tts.port)"),
                                    "audio.vad.maxSegmentSeconds": 6,
                                ]
                                let voice = try await VoiceBed.start(
                                    in: sandbox, ml: [], endpoints: [], overrides: Mic.overrides(alsa, endpoint: 0, extra: extra))
                                let admin = AdminClient(port: adminPort)

                                // The hub's answer: the Wyoming servers' transcript, intent and reply.
                                let messages = try await voice.responses.waitUntil("the hub's answer", timeout: .seconds(40)) { messages in
                                    messages.compactMap(VoiceBed.Response.init).contains { $0.topic == "device/hub-test/response" && $0.isAnswer }
                                }
                                let answer = try #require(
                                    messages.compactMap(VoiceBed.Response.init).first { $0.topic == "device/hub-test/response" && $0.isAnswer })
                                #expect(answer.type == "DIALOG_RESPONSE", "\(answer)\n\(voice.bed.gateway.logTail(lines: 40))")
                                #expect(answer.payload["transcript"] as? String == "turn on the kitchen light")
                                #expect(answer.payload["intent"] as? String == "HassTurnOn")
                                #expect(answer.payload["replyText"] as? String == "Turned on the kitchen light")

                                // The wake word opened it, and the operator sees the detection.
                                #expect(AdminClient.value(of: #"gateway_audio_segments_total{trigger="wake"}"#, in: try await admin.get("/metrics").text) == 1)
                                let status = JSON.object(try await admin.get("/api/status").body)
                                let wakeStatus = status?["wake"] as? [String: Any]
                                #expect(wakeStatus?["lastName"] as? String == "ok_nabu", "\(String(describing: wakeStatus))")

                                // The reply was spoken through the TTS server: speech, not the chime, of a plausible length.
                                _ = try await admin.waitForMetric("gateway_audio_playback_replies_total") { $0 >= 1 }
                                let played = try TestSpeech.read(sandbox.url("played.raw"))
                                let seconds = Double(played.count) / 16000
                                #expect(seconds > 0.5 && seconds < 20, "played \(seconds) s")
                                #expect(played.count > 2 * WyomingSpeechTests.chimeSamples, "played \(played.count) samples")
                                #expect(WyomingSpeechTests.rms(played) > 500, "rms \(WyomingSpeechTests.rms(played))")
                                #expect(AdminClient.value(of: "gateway_audio_playback_chimes_total", in: try await admin.get("/metrics").text) ?? 0 == 0)

                                // Upstream, the dialog names the Wyoming ASR server that served it.
                                let events = try await voice.bed.waitForUpstream(count: 1) { $0.type == "DialogCompleted" }
                                let completed = try #require(events.first { $0.type == "DialogCompleted" }?.data as? [String: Any])
                                #expect(completed["mlEndpoint"] as? String == "wyoming://127.0.0.1:\(asr.port)", "\(completed)")
                                #expect(completed["outcome"] as? String == "answered")
                            }
                        }
                    }
                }
            }
        }
    }
}
