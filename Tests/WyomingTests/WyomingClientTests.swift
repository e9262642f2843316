import BrokerTestSupport
import Foundation
import Testing

@testable import Wyoming

/// Each call against the protocol's reference implementation (Tests/Wyoming/servers.py).
@Suite("Wyoming client against the reference servers")
struct WyomingClientTests {
    static func client(_ peer: WyomingPeer, limits: WyomingLimits = WyomingLimits()) -> WyomingClient {
        WyomingClient(host: "127.0.0.1", port: peer.port, limits: limits, timeouts: WyomingTimeouts(connect: .seconds(5), call: .seconds(30)))
    }

    @Test("describe reads which service each server offers, with its models and languages", arguments: WyomingInfo.Service.allCases)
    func describeEachMode(service: WyomingInfo.Service) async throws {
        try await WyomingPeer.with(["--mode", service.rawValue]) { peer in
            let info = try await Self.client(peer).describe()
            #expect(info.services == [service])
            #expect(info.streamsTranscripts == false)
            switch service {
            case .asr: #expect(info.languages(of: .asr) == ["de", "en"])
            case .tts: #expect(info.models(of: .tts) == ["en", "de"])
            case .wake: #expect(info.programs[.wake]?.first?.models.first?.phrase == "ok nabu")
            case .intent, .handle: #expect(info.languages(of: service) == ["en"])
            }
        }
    }

    @Test("describe of a server with every service, its ASR streaming transcripts")
    func describeAll() async throws {
        try await WyomingPeer.with(["--mode", "all", "--stream"]) { peer in
            let info = try await Self.client(peer).describe()
            #expect(info.services == Set(WyomingInfo.Service.allCases))
            #expect(info.streamsTranscripts)
            #expect(info.programs[.asr]?.first?.name == "scripted-asr")
        }
    }

    @Test("transcribe sends all the audio and returns the transcript")
    func transcribe() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--transcript", "heard {bytes} bytes"]) { peer in
            let partials = Recorder<String>()
            let transcript = try await Self.client(peer).transcribe(language: "en", audio: tone(chunks: 10)) { partials.append($0) }
            #expect(transcript == WyomingTranscript(text: "heard 32000 bytes", language: "en"))
            #expect(partials.elements.isEmpty)
        }
    }

    @Test("transcribe passes a streaming server's transcript chunks on as partials")
    func transcribePartials() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--stream"]) { peer in
            let partials = Recorder<String>()
            let transcript = try await Self.client(peer).transcribe(language: nil, audio: tone(chunks: 3)) { partials.append($0) }
            #expect(transcript.text == "turn on the kitchen light")
            #expect(partials.elements == ["turn ", "on ", "the ", "kitchen ", "light "])
        }
    }

    @Test("transcribe sends audio as it arrives: the server answers before the audio ends")
    func transcribeStreamsAudio() async throws {
        try await WyomingPeer.with(["--mode", "asr", "--answer-after-bytes", "6400", "--transcript", "early {bytes}"]) { peer in
            let (audio, feed) = AsyncStream<[UInt8]>.makeStream()
            defer { feed.finish() }
            for await chunk in tone(chunks: 2) { feed.yield(chunk) }
            // The stream stays open: only audio sent before its end can have reached the server.
            let transcript = try await Self.client(peer).transcribe(language: "en", audio: audio)
            #expect(transcript.text == "early 6400")
        }
    }

    @Test("an error of the caller's audio ends transcribe with that error")
    func transcribeAudioError() async throws {
        struct MicrophoneGone: Error {}
        try await WyomingPeer.with(["--mode", "asr"]) { peer in
            let (audio, feed) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
            feed.yield([0, 0, 0, 0])
            feed.finish(throwing: MicrophoneGone())
            await #expect(throws: MicrophoneGone.self) {
                _ = try await Self.client(peer).transcribe(language: "en", audio: audio)
            }
        }
    }

    @Test("recognize: a known phrase is an intent with entities and reply, another is not recognized")
    func recognize() async throws {
        try await WyomingPeer.with(["--mode", "intent"]) { peer in
            let client = Self.client(peer)
            let known = try await client.recognize(text: "Turn on the kitchen light")
            #expect(known == .intent(name: "HassTurnOn", entities: [WyomingEntity(name: "name", value: "kitchen light")], text: "Turned on the kitchen light"))
            let unknown = try await client.recognize(text: "sing a song")
            #expect(unknown == .notRecognized(text: "Sorry, I couldn't understand that"))
        }
    }

    @Test("handle: a known phrase is handled with its reply, another is not handled")
    func handle() async throws {
        try await WyomingPeer.with(["--mode", "handle"]) { peer in
            let client = Self.client(peer)
            let known = try await client.handle(text: "what time is it")
            #expect(known == .handled(text: "It is noon"))
            let unknown = try await client.handle(text: "sing a song")
            #expect(unknown == .notHandled(text: "Sorry, I couldn't understand that"))
        }
    }

    @Test("synthesize returns espeak-ng's speech as PCM in the announced format")
    func synthesize() async throws {
        try await WyomingPeer.with(["--mode", "tts"]) { peer in
            let speech = try await Self.client(peer).synthesize(text: "The kitchen light is on", voice: "en")
            #expect(speech.format == WyomingAudioFormat(rate: 22050, width: 2, channels: 1))
            #expect(speech.pcm.count % 2 == 0)
            let seconds = Double(speech.pcm.count) / Double(speech.format.rate * speech.format.width)
            #expect(seconds > 0.5 && seconds < 10, "\(seconds) s of speech")
            let loudest = stride(from: 0, to: speech.pcm.count - 1, by: 2).map { abs(Int(Int16(bitPattern: UInt16(speech.pcm[$0]) | UInt16(speech.pcm[$0 + 1]) << 8))) }.max() ?? 0
            #expect(loudest > 1000, "not silence")
        }
    }

    @Test("synthesize stops at maxAudioBytes")
    func synthesizeLimit() async throws {
        try await WyomingPeer.with(["--mode", "tts"]) { peer in
            let error = await #expect(throws: WyomingError.self) {
                _ = try await Self.client(peer, limits: WyomingLimits(maxAudioBytes: 4096)).synthesize(text: "a long enough sentence")
            }
            #expect(error?.code == .limitExceeded)
        }
    }

    @Test("detect reports the detection while the audio streams")
    func detect() async throws {
        try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "500"]) { peer in
            let events = Recorder<WyomingWakeEvent>()
            try await Self.client(peer).detect(names: ["ok_nabu"], audio: tone(chunks: 10)) { events.append($0) }
            #expect(events.elements == [.detection(name: "ok_nabu", timestamp: 500)])
        }
    }

    @Test("detect without the wake word ends with not-detected; detections() streams the same")
    func notDetected() async throws {
        try await WyomingPeer.with(["--mode", "wake", "--detect-after-ms", "5000"]) { peer in
            var seen: [WyomingWakeEvent] = []
            for try await event in Self.client(peer).detections(audio: tone(chunks: 5)) { seen.append(event) }
            #expect(seen == [.notDetected])
        }
    }

    @Test("nothing listening is connectFailed")
    func connectRefused() async throws {
        let client = WyomingClient(host: "127.0.0.1", port: try FreePort.next())
        let error = await #expect(throws: WyomingError.self) { _ = try await client.describe() }
        #expect(error?.code == .connectFailed)
        #expect(error?.isRetriable == true)
    }
}
