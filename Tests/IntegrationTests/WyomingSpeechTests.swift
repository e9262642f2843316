import BrokerTestSupport
import Foundation
import MLFake
import Testing

extension IntegrationSuite {
    /// The hub's spoken answers through a Wyoming text-to-speech server (`audio.tts`): the hub
    /// microphone (ALSA file plugin) → the scripted gRPC ML service's reply text → `synthesize` on
    /// the reference package's server (espeak-ng, 22,050 Hz) → converted to the playback rate and
    /// written through ALSA into the file the test's `pcm.hubspk` names.
    @Suite struct WyomingSpeechTests {
        /// The daemon with the hub microphone on room noise, the playback device recorded, and the admin API.
        struct Hub {
            let voice: VoiceBed
            let ml: FakeMLService
            let admin: AdminClient
            let played: URL

            static func start(in sandbox: Sandbox, tts: String, extra: GatewayConfig = [:]) async throws -> Hub {
                let ml = FakeMLService(name: "ml-speech")
                let port = try await ml.start()
                let (config, _) = try HubMicrophoneTests.microphone(HubMicrophoneTests.noise(seconds: 60, seed: 21), in: sandbox)
                let adminPort = try FreePort.next()
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port],
                    overrides: HubMicrophoneTests.overrides(
                        config, endpoint: port, extra: (["audio.tts": .string(tts), "admin.port": .int(adminPort)] as GatewayConfig).merging(extra)))
                try await voice.bed.gateway.waitForLog("microphone open")
                return Hub(voice: voice, ml: ml, admin: AdminClient(port: adminPort), played: sandbox.url("played.raw"))
            }

            /// A push-to-talk dialog of the hub, up to its answer; returns how many answers the hub has had.
            @discardableResult
            func dialog() async throws -> Int {
                try? FileManager.default.removeItem(at: played)
                let before = answers()
                try await DeviceClient.publishOnce(
                    topic: "hub/hub-test/listen", payload: Data(#"{"seconds": 1}"#.utf8), brokerPort: voice.bed.deviceBroker.port,
                    in: voice.bed.sandbox.directory)
                _ = try await voice.responses.waitUntil("the hub's answer", timeout: .seconds(20)) { _ in answers() > before }
                return answers()
            }

            func answers() -> Int {
                voice.responses.messages.compactMap(VoiceBed.Response.init).filter {
                    $0.topic == "device/hub-test/response" && $0.type == "DIALOG_RESPONSE"
                }.count
            }

            /// What the playback device got, as 16-bit samples at 16 kHz (`audio.sampleRate`).
            func playedSamples() throws -> [Int16] { try TestSpeech.read(played) }

            func metric(_ name: String) async throws -> Double {
                AdminClient.value(of: name, in: try await admin.get("/metrics").text) ?? 0
            }

            /// Waits until the hub has played `count` chimes; on a timeout the error carries the daemon's
            /// log and the TTS server's, so a failure in CI (where the files are not kept) says why.
            func waitForChimes(_ count: Int, tts peer: WyomingPeer? = nil) async throws {
                do {
                    _ = try await admin.waitForMetric("gateway_audio_playback_chimes_total") { $0 >= Double(count) }
                } catch {
                    let ttsLog = peer.map { "\n--- the TTS server's output:\n\($0.outputTail())" } ?? ""
                    throw HarnessError(
                        "\(error)\n--- the daemon's log:\n\(voice.bed.gateway.logTail(lines: 80))\(ttsLog)")
                }
            }
        }

        static func rms(_ samples: [Int16]) -> Double {
            (samples.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, samples.count))).squareRoot()
        }

        /// The chime of an answer: two notes, 250 ms, at 16 kHz.
        static let chimeSamples = 4000

        @Test func theHubSpeaksItsAnswerThroughTheWyomingTTSServer() async throws {
            try await WyomingPeer.with(["--mode", "tts"]) { peer in
                try await withSandbox { sandbox in
                    let hub = try await Hub.start(in: sandbox, tts: "wyoming://127.0.0.1:\(peer.port)", extra: ["audio.ttsVoice": "en-us"])
                    try await hub.dialog()
                    _ = try await hub.admin.waitForMetric("gateway_audio_playback_replies_total") { $0 >= 1 }

                    // "OK from ml-speech" in espeak-ng's voice, 22,050 Hz converted to 16 kHz mono: speech, not
                    // silence, of a plausible length for the text, and longer than the chime.
                    let speech = try hub.playedSamples()
                    let seconds = Double(speech.count) / 16000
                    #expect(seconds > 0.5 && seconds < 20, "played \(seconds) s")
                    #expect(speech.count > 2 * Self.chimeSamples, "played \(speech.count) samples")
                    #expect(Self.rms(speech) > 500, "rms \(Self.rms(speech))")
                    #expect(try await hub.metric("gateway_audio_playback_chimes_total") == 0)
                    #expect(try await hub.metric("gateway_audio_playback_errors_total") == 0)
                    #expect(!hub.voice.bed.gateway.logTail(lines: 200).contains("cannot speak the reply"))
                    await hub.ml.stop()
                }
            }
        }

        @Test func aDeadTTSServerGetsTheChimeCountedAndWarned() async throws {
            try await withSandbox { sandbox in
                let hub = try await Hub.start(in: sandbox, tts: "wyoming://127.0.0.1:\(try FreePort.next())")
                try await hub.dialog()
                try await hub.voice.bed.gateway.waitForLog("cannot speak the reply through the TTS server; playing the chime instead")
                _ = try await hub.admin.waitForMetric("gateway_audio_playback_chimes_total") { $0 >= 1 }
                #expect(try hub.playedSamples().count == Self.chimeSamples)
                #expect(try await hub.metric(#"gateway_audio_tts_failures_total{reason="unreachable"}"#) == 1)
                #expect(try await hub.metric("gateway_audio_playback_errors_total") == 1)
                #expect(try await hub.metric("gateway_audio_playback_replies_total") == 0)
                // One warning per failed reply.
                #expect(hub.voice.bed.gateway.logTail(lines: 400).components(separatedBy: "cannot speak the reply through the TTS server").count == 2)
                await hub.ml.stop()
            }
        }

        /// A server that breaks the protocol, drips, floods or speaks too long costs a failed reply (the
        /// chime, counted by reason), never the daemon: the next dialog is answered and chimed too.
        @Test(arguments: [
            (["--mode", "tts", "--hostile", "huge-length"], "protocol", GatewayConfig()),
            (["--mode", "tts", "--hostile", "bad-json"], "protocol", GatewayConfig()),
            (["--mode", "tts", "--hostile", "drip"], "timeout", ["audio.ttsTimeoutSeconds": 2] as GatewayConfig),
            (["--mode", "tts", "--hostile", "flood"], "too_long", ["audio.ttsMaxSeconds": 5] as GatewayConfig),
            (["--mode", "tts", "--hostile", "silent"], "timeout", ["audio.ttsTimeoutSeconds": 2] as GatewayConfig),
            // A real reply (about a second of speech) over audio.ttsMaxSeconds.
            (["--mode", "tts"], "too_long", ["audio.ttsMaxSeconds": 0.5] as GatewayConfig),
        ])
        func aHostileOrOverlongTTSServerGetsTheChimeAndTheDaemonGoesOn(peerArguments: [String], reason: String, extra: GatewayConfig) async throws {
            try await WyomingPeer.with(peerArguments) { peer in
                try await withSandbox { sandbox in
                    let hub = try await Hub.start(in: sandbox, tts: "wyoming://127.0.0.1:\(peer.port)", extra: extra)
                    try await hub.dialog()
                    try await hub.waitForChimes(1, tts: peer)
                    #expect(try hub.playedSamples().count == Self.chimeSamples)
                    #expect(try await hub.metric("gateway_audio_tts_failures_total{reason=\"\(reason)\"}") == 1)
                    let warning = hub.voice.bed.gateway.logTail(lines: 400).split(separator: "\n").first {
                        $0.contains("cannot speak the reply through the TTS server; playing the chime instead")
                    }
                    #expect(warning?.hasSuffix(" reason=\(reason)") == true, "\(String(describing: warning))")

                    // Still up, and the next dialog is answered (and chimed) as well.
                    #expect(try await hub.dialog() == 2)
                    try await hub.waitForChimes(2, tts: peer)
                    #expect(try await hub.metric("gateway_audio_tts_failures_total{reason=\"\(reason)\"}") == 2)
                    #expect(hub.voice.bed.gateway.isRunning)
                    await hub.ml.stop()
                }
            }
        }
    }
}
