import Audio
import BrokerTestSupport
import Foundation
import Logging
import Synchronization
import Testing
import Wyoming

@testable import MLLink

/// A Wyoming server as an ML endpoint: the backend against the protocol's reference servers
/// (Tests/Wyoming/servers.py), and the pool choosing among kinds.
@Suite(.timeLimit(.minutes(2))) struct WyomingBackendTests {
    static let logger = Logger(label: "wyoming-backend-test")

    static func backend(_ peer: WyomingPeer, intentTimeout: Duration = .seconds(5)) -> WyomingBackend {
        WyomingBackend(
            endpoint: MLEndpoint(host: "127.0.0.1", port: peer.port, kind: .wyoming), intentTimeout: intentTimeout, logger: logger)
    }

    static func pcm(_ samples: [Int16]) -> [UInt8] {
        samples.flatMap { sample -> [UInt8] in
            let bits = UInt16(bitPattern: sample)
            return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
        }
    }

    static func tone(rate: Int, channels: Int, seconds: Double) -> [Int16] {
        (0..<Int(Double(rate) * seconds)).flatMap { index in
            [Int16](repeating: Int16(10_000 * sin(2 * .pi * 440 * Double(index) / Double(rate))), count: channels)
        }
    }

    /// Transcribes `chunks` described by `configuration`; returns every result in order.
    static func transcribe(_ backend: WyomingBackend, _ configuration: AudioStreamConfiguration, _ chunks: [[UInt8]]) async throws(MLError) -> [Transcription] {
        let results = Mutex<[Transcription]>([])
        let audio = ReplayableAudio()
        for chunk in chunks { audio.append(chunk) }
        audio.finish()
        try await backend.transcribe(configuration: configuration, audio: audio.reader()) { result in
            results.withLock { $0.append(result) }
        }
        return results.withLock { $0 }
    }

    static func configuration(codec: String, rate: Int, channels: Int) -> AudioStreamConfiguration {
        AudioStreamConfiguration(codec: codec, sampleRate: Int32(rate), channels: Int32(channels), language: "de", deviceID: "dev-1", sessionID: "s-1")
    }

    // MARK: - Parsing and mapping

    @Test func wyomingEntriesParseAndNameThemselvesRecognisably() throws {
        let v4 = try #require(MLConfiguration.Target("wyoming://127.0.0.1:10300"))
        #expect(v4 == .wyoming(MLEndpoint(host: "127.0.0.1", port: 10300, kind: .wyoming)))
        #expect("\(v4)" == "wyoming://127.0.0.1:10300")
        #expect(v4.kind == .wyoming)
        let v6 = try #require(MLConfiguration.Target(" wyoming://[::1]:10200 "))
        #expect(v6.endpoint == MLEndpoint(host: "::1", port: 10200, kind: .wyoming))
        #expect("\(v6)" == "wyoming://[::1]:10200")
        let grpc = try #require(MLConfiguration.Target("127.0.0.1:50051"))
        #expect("\(grpc)" == "127.0.0.1:50051")
        #expect(grpc.kind == .grpc)
        #expect(grpc.endpoint != v4.endpoint)
        for bad in ["wyoming://", "wyoming://host", "wyoming://host:0", "wyoming://host:70000", "wyoming:///host:1", "wyoming://a/b:1", "tcp://host:1"] {
            #expect(MLConfiguration.Target(bad) == nil, "\(bad)")
        }
    }

    @Test func onlyWyomingTranscriptionKeepsDevicePCM() {
        var configuration = MLConfiguration()
        configuration.targets = [.wyoming(MLEndpoint(host: "127.0.0.1", port: 1, kind: .wyoming))]
        #expect(configuration.transcribesOnlyOverWyoming)
        configuration.targets.append(.address(MLEndpoint(host: "127.0.0.1", port: 2)))
        #expect(!configuration.transcribesOnlyOverWyoming)
        configuration.transcriptionBackends = .wyoming
        #expect(configuration.transcribesOnlyOverWyoming)
        configuration.transcriptionBackends = .grpc
        #expect(!configuration.transcribesOnlyOverWyoming)
        configuration.targets = []
        configuration.transcriptionBackends = .auto
        #expect(!configuration.transcribesOnlyOverWyoming)
    }

    @Test func everyWyomingErrorIsRetriableForThePool() {
        for code in WyomingError.Code.allCases {
            let error = WyomingBackend.mlError(WyomingError(code, "x"), call: "intent")
            #expect(error.isRetriable, "\(code) → \(error)")
            #expect(error.message.contains(code.rawValue))
            #expect(error.code == (code == .deadlineExceeded ? .deadlineExceeded : .unavailable))
        }
        let audioError = MLError(.unavailable, "the session is over")
        #expect(WyomingBackend.mlError(audioError, call: "transcribe").message == audioError.message, "the audio's own error as it is")
        #expect(WyomingBackend.mlError(CancellationError(), call: "transcribe").code == .unavailable)
    }

    @Test func entityValuesBecomeStrings() {
        #expect(WyomingBackend.string(.string("kitchen")) == "kitchen")
        #expect(WyomingBackend.string(.int(3)) == "3")
        #expect(WyomingBackend.string(.null) == "")
        #expect(WyomingBackend.string(.bool(true)) == "true")
    }

    // MARK: - Against the reference servers

    @Test func capabilitiesComeFromDescribeAndNothingIsOfferedBefore() async throws {
        for (mode, expected) in [("asr", MLCapabilities.transcription), ("intent", .intent), ("handle", .intent), ("tts", []), ("all", .all)] {
            try await WyomingPeer.with(["--mode", mode, "--stream"]) { peer in
                let backend = Self.backend(peer)
                #expect(backend.capabilities == [], "nothing before the first describe")
                #expect(backend.details == nil)
                #expect(await backend.checkHealth(timeout: .seconds(5)) == .serving)
                #expect(backend.capabilities == expected, "\(mode)")
                let details = try #require(backend.details)
                #expect(details.services == (mode == "all" ? ["asr", "intent", "handle", "tts", "wake"] : [mode]))
                #expect(!details.programs.isEmpty)
                #expect(details.streamsTranscripts == (mode == "asr" || mode == "all"))
            }
        }
    }

    @Test func aServerThatGoesAwayIsUnreachableAndKeepsWhatItOffered() async throws {
        let backend = try await WyomingPeer.with(["--mode", "asr"]) { peer in
            let backend = Self.backend(peer)
            #expect(await backend.checkHealth(timeout: .seconds(5)) == .serving)
            return backend
        }
        #expect(await backend.checkHealth(timeout: .seconds(2)) == .unreachable)
        #expect(backend.capabilities == .transcription)
    }

    @Test func aSilentServerIsUnreachableOffersNothingAndFailsRetriably() async throws {
        try await WyomingPeer.with(["--mode", "all", "--hostile", "silent"]) { peer in
            let backend = Self.backend(peer, intentTimeout: .milliseconds(300))
            #expect(await backend.checkHealth(timeout: .milliseconds(300)) == .unreachable)
            #expect(backend.capabilities == [])
            do {
                _ = try await backend.analyzeIntent(text: "turn on the kitchen light", context: [:], deviceID: "d", userID: "u")
                Issue.record("a silent server cannot answer")
            } catch let error as MLError {
                #expect(error.code == .deadlineExceeded, "\(error)")
                #expect(error.isRetriable)
            }
        }
    }

    @Test(arguments: ["huge-length", "bad-json", "drop"])
    func aHostileServerCostsARetriableFailure(hostile: String) async throws {
        try await WyomingPeer.with(["--mode", "asr", "--hostile", hostile]) { peer in
            let backend = Self.backend(peer)
            do {
                _ = try await Self.transcribe(backend, Self.configuration(codec: "pcm_s16le", rate: 16000, channels: 1), [[UInt8](repeating: 0, count: 3200)])
                Issue.record("\(hostile) cannot give a transcript")
            } catch let error as MLError {
                #expect(error.isRetriable, "\(hostile): \(error)")
            }
        }
    }

    @Test func opusIsDecodedTo16kHzMonoPCM() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--transcript", "{format} {bytes} {language}"]) { peer in
            let backend = Self.backend(peer)
            let encoder = try OpusEncoder(sampleRate: 48_000, channels: 2)
            let samples = Self.tone(rate: 48_000, channels: 2, seconds: 1)
            let frame = encoder.frameSize(milliseconds: 20) * 2
            let packets = try stride(from: 0, to: samples.count, by: frame).map { try encoder.encode(Array(samples[$0..<$0 + frame])) }
            #expect(packets.count == 50)
            let results = try await Self.transcribe(backend, Self.configuration(codec: "opus", rate: 48_000, channels: 2), packets)
            #expect(results == [Transcription(text: "16000 2 1 32000 de", isFinal: true, confidence: 1)], "50 packets of 20 ms at 16 kHz mono")
        }
    }

    @Test func pcmAt48kHzStereoIsResampledTo16kHzMono() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--transcript", "{format} {bytes}"]) { peer in
            let backend = Self.backend(peer)
            let bytes = Self.pcm(Self.tone(rate: 48_000, channels: 2, seconds: 1))
            let chunks = stride(from: 0, to: bytes.count, by: 1001).map { Array(bytes[$0..<min(bytes.count, $0 + 1001)]) }
            let results = try await Self.transcribe(backend, Self.configuration(codec: "pcm_s16le", rate: 48_000, channels: 2), chunks)
            #expect(results.map(\.text) == ["16000 2 1 32000"])
        }
    }

    @Test func pcmAt16kHzMonoPassesAsItIs() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--transcript", "{format} {bytes}"]) { peer in
            let backend = Self.backend(peer)
            let bytes = Self.pcm(Self.tone(rate: 16_000, channels: 1, seconds: 0.5))
            let results = try await Self.transcribe(backend, Self.configuration(codec: "pcm_s16le", rate: 16_000, channels: 1), [bytes])
            #expect(results.map(\.text) == ["16000 2 1 16000"])
        }
    }

    @Test func transcriptChunksArePartialsBeforeTheFinalTranscript() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--stream"]) { peer in
            let backend = Self.backend(peer)
            let results = try await Self.transcribe(
                backend, Self.configuration(codec: "pcm_s16le", rate: 16000, channels: 1), [[UInt8](repeating: 0, count: 6400)])
            #expect(results.map(\.text) == ["turn ", "on ", "the ", "kitchen ", "light ", "turn on the kitchen light"])
            #expect(results.map(\.isFinal) == [false, false, false, false, false, true])
        }
    }

    @Test func recognizeMapsIntentAndNotRecognized() async throws {
        try await WyomingPeer.with(["--mode", "intent"]) { peer in
            let backend = Self.backend(peer)
            _ = await backend.checkHealth(timeout: .seconds(5))
            let known = try await backend.analyzeIntent(text: "turn on the kitchen light", context: [:], deviceID: "d", userID: "u")
            #expect(known == IntentAnalysis(intent: "HassTurnOn", confidence: 1, entities: ["name": "kitchen light"], replyText: "Turned on the kitchen light"))
            let unknown = try await backend.analyzeIntent(text: "sing a song", context: [:], deviceID: "d", userID: "u")
            #expect(unknown == IntentAnalysis(intent: "unknown", confidence: 0, entities: [:], replyText: "Sorry, I couldn't understand that"))
        }
    }

    @Test func aHandleServerAnswersWithItsText() async throws {
        try await WyomingPeer.with(["--mode", "handle"]) { peer in
            let backend = Self.backend(peer)
            _ = await backend.checkHealth(timeout: .seconds(5))
            let handled = try await backend.analyzeIntent(text: "what time is it", context: [:], deviceID: "d", userID: "u")
            #expect(handled == IntentAnalysis(intent: "handled", confidence: 1, entities: [:], replyText: "It is noon"))
            let unknown = try await backend.analyzeIntent(text: "sing a song", context: [:], deviceID: "d", userID: "u")
            #expect(unknown == IntentAnalysis(intent: "unknown", confidence: 0, entities: [:], replyText: "Sorry, I couldn't understand that"))
        }
    }

    // MARK: - In the pool

    @Test func thePoolSendsEachStepToTheKindItIsGiven() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--transcript", "from wyoming"]) { asr in
            try await WyomingPeer.with(["--mode", "intent"]) { intent in
                var configuration = MLConfiguration()
                configuration.targets = [
                    .wyoming(MLEndpoint(host: "127.0.0.1", port: asr.port, kind: .wyoming)),
                    .wyoming(MLEndpoint(host: "127.0.0.1", port: intent.port, kind: .wyoming)),
                ]
                configuration.healthCheckInterval = .milliseconds(200)
                configuration.shutdownGrace = .seconds(1)
                let pool = MLEndpointPool(configuration: configuration, logger: Self.logger)
                try await withThrowingDiscardingTaskGroup { group in
                    group.addTask { await pool.run() }
                    try await Poll.until("both servers described") { pool.endpoints.map(\.capabilities) == [.transcription, .intent] }
                    #expect(pool.endpoints.map { "\($0.endpoint)" } == ["wyoming://127.0.0.1:\(asr.port)", "wyoming://127.0.0.1:\(intent.port)"])
                    #expect(pool.endpoints.compactMap(\.details).map(\.services) == [["asr"], ["intent"]])
                    let audio = ReplayableAudio()
                    audio.append([UInt8](repeating: 0, count: 3200))
                    audio.finish()
                    let texts = Mutex<[String]>([])
                    let served = try await pool.transcribe(
                        configuration: Self.configuration(codec: "pcm_s16le", rate: 16000, channels: 1), audio: audio
                    ) { result in texts.withLock { $0.append(result.text) } }
                    #expect(served.port == asr.port)
                    #expect(texts.withLock { $0 } == ["from wyoming"])
                    let analysis = try await pool.analyzeIntent(text: "what time is it", deviceID: "d", userID: "u")
                    #expect(analysis.intent == "HassGetCurrentTime")

                    // ml.intent = grpc: no gRPC endpoint here, so no intent call at all.
                    var grpcOnly = configuration
                    grpcOnly.intentBackends = .grpc
                    await pool.update(grpcOnly)
                    do {
                        _ = try await pool.analyzeIntent(text: "what time is it", deviceID: "d", userID: "u")
                        Issue.record("ml.intent grpc must not use a Wyoming endpoint")
                    } catch let error as MLError {
                        #expect(error.message.contains("no ML endpoint offers intent"), "\(error)")
                    }
                    pool.shutDown()
                }
            }
        }
    }
}
