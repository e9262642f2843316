import BrokerTestSupport
import Foundation
import GRPCCore
import MLFake
import Testing

extension IntegrationSuite {
    /// Device voice dialogs end to end: a device speaking Opus over MQTT, the daemon, a scripted ML
    /// server over real gRPC, a user service over HTTP, the answer back on `device/{id}/response`
    /// and the `DialogCompleted` event upstream.
    @Suite struct VoiceDialogTests {
        @Test func aDeviceAsksAndGetsPartialsAnAnswerAndADialogCompletedEventUpstream() async throws {
            try await withSandbox { sandbox in
                let ml = FakeMLService(name: "ml-1")
                let port = try await ml.start()
                let users = FakeUserService()
                users.set(.init(id: "user-7", name: "Ada"))
                let voice = try await VoiceBed.start(in: sandbox, ml: [ml], endpoints: [port], users: users)
                let device = try await voice.device("speaker-1")
                let frames = try voice.opusFrames
                let session = try await device.speak(frames: frames, userId: "user-7")

                let answer = try await voice.answer(device: "speaker-1", session: session)
                #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")
                #expect(answer.payload["transcript"] as? String == "turn on the kitchen lights")
                #expect(answer.payload["intent"] as? String == "intent:turn on the kitchen lights")
                #expect((answer.payload["confidence"] as? Double).map { abs($0 - 0.875) < 1e-6 } == true)
                #expect(answer.payload["entities"] as? [String: String] == ["room": "kitchen", "server": "ml-1"])
                #expect(answer.payload["replyText"] as? String == "OK from ml-1")
                #expect((answer.envelope["messageId"] as? String).flatMap(UUID.init(uuidString:)) != nil)
                #expect(answer.envelope["timestamp"] is Int)

                // Partials came first, one per 10 frames, for this session.
                let all = voice.responses(for: "speaker-1")
                let partials = all.filter { $0.type == "TRANSCRIPT_PARTIAL" }
                #expect(partials.count == frames.count / 10, "\(all.map(\.description))")
                #expect(partials.allSatisfy { $0.session == session.uuidString.lowercased() && ($0.payload["text"] as? String)?.hasPrefix("partial") == true })
                #expect(all.last?.type == "DIALOG_RESPONSE")

                // The ML service saw the contract's stream: config first, then every Opus packet in order.
                let stream = try #require(ml.streams.withLock { $0.first })
                #expect(stream.config.codec == "opus")
                #expect(stream.config.sampleRate == 16000)
                #expect(stream.config.channels == 1)
                #expect(stream.config.language == "en-US")
                #expect(stream.config.deviceID == "speaker-1")
                #expect(stream.config.sessionID == session.uuidString.lowercased())
                #expect(stream.chunks == frames)
                let intent = try #require(ml.intents.withLock { $0.first })
                #expect(intent.request.userID == "user-7")
                #expect(intent.request.deviceID == "speaker-1")
                #expect(intent.request.context["language"] == "en-US")

                // DialogCompleted reaches the cloud keyed by the user.
                let events = try await voice.bed.waitForUpstream(count: 1) { $0.type == "DialogCompleted" }
                let event = try #require(events.first { $0.type == "DialogCompleted" })
                #expect(event.key == "user-7")
                #expect(event.deviceId == "speaker-1")
                #expect(event.eventId == "dialog-\(session.uuidString.lowercased())")
                let data = try #require(event.data as? [String: Any])
                #expect(data["userId"] as? String == "user-7")
                #expect(data["userSource"] as? String == "service")
                #expect(data["outcome"] as? String == "answered")
                #expect(data["transcript"] as? String == "turn on the kitchen lights")
                #expect(data["intent"] as? String == "intent:turn on the kitchen lights")
                #expect(data["frames"] as? Int == frames.count)
                let timings = try #require(data["timings"] as? [String: Any])
                #expect(["audioMs", "transcriptionMs", "userLookupMs", "intentMs", "totalMs"].allSatisfy { timings[$0] is Int })
                await device.close()
                await ml.stop()
                await users.stop()
            }
        }

        @Test func anEndpointConfiguredForPCMGetsTheOpusDecoded() async throws {
            try await withSandbox { sandbox in
                let ml = FakeMLService(name: "pcm")
                let port = try await ml.start()
                let voice = try await VoiceBed.start(in: sandbox, ml: [ml], endpoints: [port], overrides: ["ml.codec": "pcm_s16le"])
                let device = try await voice.device("speaker-2")
                let frames = try voice.opusFrames
                let session = try await device.speak(frames: frames)
                let answer = try await voice.answer(device: "speaker-2", session: session)
                #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")

                let stream = try #require(ml.streams.withLock { $0.first })
                #expect(stream.config.codec == "pcm_s16le")
                #expect(stream.chunks.count == frames.count)
                #expect(stream.chunks.allSatisfy { $0.count == 640 }, "20 ms of 16 kHz mono S16LE per Opus packet")
                // What arrived is the speech (Opus delays it a little): compare at the best lag.
                let pcm = stream.chunks.joined().map { $0 }
                let received = stride(from: 0, to: pcm.count - 1, by: 2).map { Double(Int16(bitPattern: UInt16(pcm[$0]) | UInt16(pcm[$0 + 1]) << 8)) }
                let sent = voice.speech.prefix(received.count).map(Double.init)
                var best = 0.0
                for lag in 0..<240 {
                    var dot = 0.0, a = 0.0, b = 0.0
                    for i in 0..<(sent.count - 240) {
                        dot += sent[i] * received[i + lag]; a += sent[i] * sent[i]; b += received[i + lag] * received[i + lag]
                    }
                    best = max(best, dot / (a * b).squareRoot())
                }
                #expect(best > 0.8, "correlation of the decoded audio with the test file: \(best)")
                // No user id and the default policy (allow): answered without a user, keyed by the device.
                let events = try await voice.bed.waitForUpstream(count: 1) { $0.type == "DialogCompleted" }
                #expect(events.first { $0.type == "DialogCompleted" }?.key == "speaker-2")
                await device.close()
                await ml.stop()
            }
        }

        @Test func aBlockedUserIsToldSoWithoutIntentAnalysis() async throws {
            try await withSandbox { sandbox in
                let users = FakeUserService()
                users.set(.init(id: "mallory", name: "Mallory", blocked: true))
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, users: users)
                let device = try await voice.device("speaker-3")
                let session = try await device.speak(frames: try voice.opusFrames, userId: "mallory")
                let answer = try await voice.answer(device: "speaker-3", session: session)
                #expect(answer.type == "DIALOG_RESPONSE")
                #expect(answer.payload["intent"] as? String == "user.blocked")
                #expect((answer.payload["replyText"] as? String)?.contains("blocked") == true)
                #expect(answer.payload["transcript"] as? String == "turn on the kitchen lights")
                #expect(ml.intentCount == 0, "no intent analysis for a blocked user")
                let events = try await voice.bed.waitForUpstream(count: 1) { $0.type == "DialogCompleted" }
                let data = events.first { $0.type == "DialogCompleted" }?.data as? [String: Any]
                #expect(data?["outcome"] as? String == "blocked")
                await device.close()
                await ml.stop()
                await users.stop()
            }
        }

        @Test func withTheUserServiceDownACachedRecordIsUsedAndAnUncachedUserFollowsThePolicy() async throws {
            try await withSandbox { sandbox in
                let ml = FakeMLService(name: "ml")
                let port = try await ml.start()
                let users = FakeUserService()
                users.set(.init(id: "ada", name: "Ada"))
                users.set(.init(id: "eve", name: "Eve", blocked: true))
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port], users: users, overrides: ["users.unknownUserPolicy": "deny"])
                let device = try await voice.device("speaker-4")
                let frames = try voice.opusFrames

                // While the service is up: both users are looked up (and cached).
                let first = try await device.speak(frames: frames, userId: "ada")
                #expect(try await voice.answer(device: "speaker-4", session: first).payload["intent"] as? String == "intent:turn on the kitchen lights")
                let second = try await device.speak(frames: frames, userId: "eve")
                #expect(try await voice.answer(device: "speaker-4", session: second).payload["intent"] as? String == "user.blocked")

                // The service goes away (connection refused).
                await users.stop()
                let cachedAda = try await device.speak(frames: frames, userId: "ada")
                let answer = try await voice.answer(device: "speaker-4", session: cachedAda)
                #expect(answer.payload["intent"] as? String == "intent:turn on the kitchen lights", "the cached record lets Ada in")
                let cachedEve = try await device.speak(frames: frames, userId: "eve")
                #expect(try await voice.answer(device: "speaker-4", session: cachedEve).payload["intent"] as? String == "user.blocked",
                        "the cached record still blocks Eve")
                let stranger = try await device.speak(frames: frames, userId: "stranger")
                let denied = try await voice.answer(device: "speaker-4", session: stranger)
                #expect(denied.type == "DIALOG_RESPONSE")
                #expect(denied.payload["intent"] as? String == "user.unknown", "no record and policy deny: \(denied)")
                let log = voice.bed.gateway.currentRunLog
                #expect(log.contains("using the cached user record"), "\(log.split(separator: "\n").filter { $0.contains("user") }.suffix(10))")

                let events = try await voice.bed.waitForUpstream(count: 5) { $0.type == "DialogCompleted" }
                let sources = events.filter { $0.type == "DialogCompleted" }.compactMap { ($0.data as? [String: Any])?["userSource"] as? String }
                #expect(sources.sorted() == ["cache", "cache", "service", "service", "unavailable"], "\(sources)")
                #expect(ml.intentCount == 2, "intent analysis only for Ada")
                await device.close()
                await ml.stop()
            }
        }

        @Test func oneDeadEndpointOfThreeIsAvoidedAndItsBreakerOpens() async throws {
            try await withSandbox { sandbox in
                let live = [FakeMLService(name: "a"), FakeMLService(name: "c")]
                var ports: [Int] = []
                for server in live { ports.append(try await server.start()) }
                let dead = try FreePort.next()
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: live, endpoints: [ports[0], dead, ports[1]],
                    overrides: ["ml.breaker.minimumCalls": 2, "ml.balancing": "roundRobin"])
                let device = try await voice.device("speaker-5")
                let frames = try voice.opusFrames
                var servers: Set<String> = []
                for _ in 0..<6 {
                    let session = try await device.speak(frames: frames, interval: .zero)
                    let answer = try await voice.answer(device: "speaker-5", session: session)
                    #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")
                    if let server = (answer.payload["entities"] as? [String: String])?["server"] { servers.insert(server) }
                }
                #expect(servers.isSubset(of: ["a", "c"]))
                #expect(live.allSatisfy { $0.streamCount + $0.intentCount > 0 }, "both live endpoints served calls")
                try await voice.bed.gateway.waitForLog("ML endpoint circuit breaker open", timeout: .seconds(10))
                #expect(voice.bed.gateway.currentRunLog.contains("ml.endpoint=127.0.0.1:\(dead)"))
                #expect(live.map(\.streamCount).reduce(0, +) == 6)
                await device.close()
                for server in live { await server.stop() }
            }
        }

        @Test func withEveryEndpointDeadDevicesGetAnErrorAtOnceAndAReturningEndpointIsUsedAfterItsProbe() async throws {
            try await withSandbox { sandbox in
                let deadPort = try FreePort.next()
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [], endpoints: [deadPort],
                    overrides: ["ml.breaker.minimumCalls": 1, "ml.breaker.openSeconds": 1, "ml.healthCheckIntervalSeconds": 0])
                let device = try await voice.device("speaker-6")
                let frames = try voice.opusFrames
                let first = try await device.speak(frames: frames, interval: .zero)
                let failed = try await voice.answer(device: "speaker-6", session: first)
                #expect(failed.type == "ERROR")
                #expect(failed.code == "ml_unavailable", "\(failed)")
                // The breaker is open now: the next session is refused without trying the endpoint.
                let second = try await device.speak(frames: frames, interval: .zero)
                let refused = try await voice.answer(device: "speaker-6", session: second)
                #expect(refused.code == "ml_unavailable")
                #expect((refused.payload["message"] as? String)?.contains("circuit breaker is open") == true, "\(refused)")

                // The endpoint comes back on the same port; after the cool-down a probe closes the breaker.
                let back = FakeMLService(name: "back", port: deadPort)
                _ = try await back.start()
                var answered: VoiceBed.Response?
                for _ in 0..<20 where answered?.type != "DIALOG_RESPONSE" {
                    try await Task.sleep(for: .milliseconds(500))
                    let session = try await device.speak(frames: frames, interval: .zero)
                    answered = try await voice.answer(device: "speaker-6", session: session)
                }
                #expect(answered?.type == "DIALOG_RESPONSE", "\(String(describing: answered))")
                try await voice.bed.gateway.waitForLog("ML endpoint circuit breaker closed")
                await device.close()
                await back.stop()
            }
        }

        @Test func anIntentPastItsDeadlineGivesTheDeviceAnError() async throws {
            try await withSandbox { sandbox in
                var script = FakeMLService.Script()
                script.intentDelay = .seconds(3)
                let ml = FakeMLService(name: "slow", script: script)
                let port = try await ml.start()
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port], overrides: ["ml.intentTimeoutMs": 300, "dialog.sessionTimeoutMs": 10000])
                let device = try await voice.device("speaker-7")
                let session = try await device.speak(frames: try voice.opusFrames, interval: .zero)
                let answer = try await voice.answer(device: "speaker-7", session: session)
                #expect(answer.type == "ERROR")
                #expect(answer.code == "ml_failed", "\(answer)")
                #expect((answer.payload["message"] as? String)?.contains("deadline exceeded") == true, "\(answer)")
                await device.close()
                await ml.stop()
            }
        }

        @Test func malformedAudioIsRefusedWithAReasonAndTheNextSessionStillWorks() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.maxAudioMessageBytes": 2048])
                let device = try await voice.device("speaker-8")
                try device.publish([0x7F, 1, 2, 3])                                       // unknown kind
                try device.publish([0x02, 1, 2])                                          // short frame
                try device.publish([0x01] + Array(#"{"session":"nope","codec":"opus"}"#.utf8))  // bad start
                try device.publish(AudioDevice.start(session: UUID(), codec: "mp3"))      // unknown codec
                try device.publish([0x02] + [UInt8](repeating: 0, count: 4000))           // over the limit
                try device.publish(AudioDevice.frame(session: UUID(), sequence: 0, payload: [1, 2, 3]))  // no such session: counted only
                try await voice.responses.waitFor(count: 5) { VoiceBed.Response($0)?.code != nil }
                let codes = voice.responses(for: "speaker-8").compactMap(\.code)
                #expect(codes == Array(repeating: "malformed_audio", count: 5), "\(codes)")
                #expect(voice.responses(for: "speaker-8").allSatisfy { ($0.payload["message"] as? String)?.isEmpty == false })

                // Frames out of order within the window are put back in order.
                let frames = try voice.opusFrames
                var order = Array(frames.indices)
                for start in stride(from: 0, to: order.count - 3, by: 4) { order.swapAt(start, start + 2) }
                let session = try await device.speak(frames: frames, order: order)
                #expect(try await voice.answer(device: "speaker-8", session: session).type == "DIALOG_RESPONSE")
                #expect(ml.streams.withLock { $0.last?.chunks } == frames, "reordered into the original order")
                await device.close()
                await ml.stop()
            }
        }

        @Test func aSessionThatGoesSilentIsClosedWithATimeoutError() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.sessionTimeoutMs": 500])
                let device = try await voice.device("speaker-9")
                let session = UUID()
                try device.publish(AudioDevice.start(session: session))
                for (index, frame) in try voice.opusFrames.prefix(10).enumerated() {
                    try device.publish(AudioDevice.frame(session: session, sequence: UInt32(index), payload: frame))
                }
                // ... and no end.
                let answer = try await voice.answer(device: "speaker-9", session: session)
                #expect(answer.type == "ERROR")
                #expect(answer.code == "session_timeout", "\(answer)")
                // A frame after the close belongs to no session; a new session works.
                try device.publish(AudioDevice.frame(session: session, sequence: 10, payload: [1]))
                let next = try await device.speak(frames: try voice.opusFrames)
                #expect(try await voice.answer(device: "speaker-9", session: next).type == "DIALOG_RESPONSE")
                #expect(voice.responses(for: "speaker-9").filter { $0.session == session.uuidString.lowercased() && $0.isAnswer }.count == 1)
                await device.close()
                await ml.stop()
            }
        }

        @Test func sessionLimitsPerDeviceAreEnforced() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.maxSessionsPerDevice": 1])
                let device = try await voice.device("speaker-10")
                let open = UUID()
                try device.publish(AudioDevice.start(session: open))
                let second = UUID()
                try device.publish(AudioDevice.start(session: second))
                let refused = try await voice.answer(device: "speaker-10", session: second)
                #expect(refused.code == "too_many_sessions", "\(refused)")
                let frames = try voice.opusFrames
                for (index, frame) in frames.enumerated() {
                    try device.publish(AudioDevice.frame(session: open, sequence: UInt32(index), payload: frame))
                }
                try device.publish(AudioDevice.end(session: open, lastSequence: frames.count - 1))
                #expect(try await device.waitForAnswer(open) == "DIALOG_RESPONSE")
                // A device that starts its next session the moment it hears the answer is not refused
                // (the answered session has left the table before its answer went out).
                let next = try await device.speak(frames: frames, interval: .zero)
                let answer = try await voice.answer(device: "speaker-10", session: next)
                #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")
                await device.close()
                await ml.stop()
            }
        }

        @Test func theMLServiceIsReachedOverTLS() async throws {
            try await withSandbox { sandbox in
                let certificates = try await TestCertificates.make(in: try sandbox.makeDirectory("tls"))
                let ml = FakeMLService(name: "tls", tls: (certificates.certFile.path, certificates.keyFile.path))
                let port = try await ml.start()
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port],
                    overrides: ["ml.tls.enabled": true, "ml.tls.caFile": .string(certificates.caFile.path)])
                let device = try await voice.device("speaker-11")
                let session = try await device.speak(frames: try voice.opusFrames)
                let answer = try await voice.answer(device: "speaker-11", session: session)
                #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")
                #expect(ml.streamCount == 1)
                await device.close()
                await ml.stop()
            }
        }

        @Test func anMLServerWithAnUntrustedCertificateGetsNoAudio() async throws {
            try await withSandbox { sandbox in
                let certificates = try await TestCertificates.make(in: try sandbox.makeDirectory("tls"))
                let other = try await TestCertificates.make(in: try sandbox.makeDirectory("other-ca"))
                let ml = FakeMLService(name: "tls", tls: (certificates.certFile.path, certificates.keyFile.path))
                let port = try await ml.start()
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port],
                    overrides: ["ml.tls.enabled": true, "ml.tls.caFile": .string(other.caFile.path), "ml.healthCheckIntervalSeconds": 0])
                let device = try await voice.device("speaker-12")
                let refused = try await voice.answer(device: "speaker-12", session: try await device.speak(frames: try voice.opusFrames))
                #expect(refused.code == "ml_unavailable", "\(refused)")
                #expect(ml.streamCount == 0)
                await device.close()
                await ml.stop()
            }
        }

        @Test func onShutdownAnOpenSessionIsAnsweredAndTheDaemonExitsCleanly() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.sessionTimeoutMs": 60000])
                let device = try await voice.device("speaker-13")
                let session = UUID()
                try device.publish(AudioDevice.start(session: session))
                for (index, frame) in try voice.opusFrames.prefix(5).enumerated() {
                    try device.publish(AudioDevice.frame(session: session, sequence: UInt32(index), payload: frame))
                }
                try await voice.bed.gateway.waitForLog("dialog session started")
                let exit = try await voice.bed.gateway.terminate()
                #expect(exit == .exited(0), "\(exit)")
                let answer = try await voice.answer(device: "speaker-13", session: session)
                #expect(answer.code == "shutting_down", "\(answer)")
                await device.close()
                await ml.stop()
            }
        }

        @Test func aResponseThatCannotBePublishedIsRetriedThenCountedLost() async throws {
            try await withSandbox { sandbox in
                var script = FakeMLService.Script()
                script.intentDelay = .milliseconds(800)
                let ml = FakeMLService(name: "ml", script: script)
                let port = try await ml.start()
                // Retries after 0.25, 0.75, 1.5, 2.5, 3.75 s: the broker is back within them.
                let voice = try await VoiceBed.start(in: sandbox, ml: [ml], endpoints: [port], overrides: ["dialog.responseAttempts": 6])
                let device = try await voice.device("speaker-14")
                let session = try await device.speak(frames: try voice.opusFrames, interval: .zero)
                try await voice.bed.gateway.waitForLog("dialog session started")
                try await Poll.until("the intent request at the ML service") { ml.intentCount > 0 }
                // The answer is due while the device broker is away: the daemon answers (and logs it)
                // before the broker is back.
                try await voice.bed.deviceBroker.stop()
                try await voice.bed.gateway.waitForLog("dialog answered")
                try await voice.bed.deviceBroker.start()
                let answer = try await voice.answer(device: "speaker-14", session: session)
                #expect(answer.type == "DIALOG_RESPONSE", "\(answer)")
                #expect(!voice.bed.gateway.currentRunLog.contains("could not publish a response"))

                // With the broker away past every attempt, the response is given up and logged.
                await device.close()
                let again = try await voice.device("speaker-14")
                _ = try await again.speak(frames: try voice.opusFrames, interval: .zero)
                try await Poll.until("the second intent request at the ML service") { ml.intentCount >= 2 }
                try await voice.bed.deviceBroker.stop()
                try await voice.bed.gateway.waitForLog("could not publish a response to the device", timeout: .seconds(20))
                try await voice.bed.deviceBroker.start()
                await again.close()
                await ml.stop()
            }
        }

        @Test func theGlobalSessionLimitRefusesASecondDevice() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.maxSessions": 1])
                let first = try await voice.device("speaker-15")
                let second = try await voice.device("speaker-16")
                let open = UUID()
                try first.publish(AudioDevice.start(session: open))
                try await voice.bed.gateway.waitForLog("dialog session started")
                let refused = UUID()
                try second.publish(AudioDevice.start(session: refused))
                let answer = try await voice.answer(device: "speaker-16", session: refused)
                #expect(answer.code == "too_many_sessions", "\(answer)")
                #expect((answer.payload["message"] as? String)?.contains("dialog.maxSessions") == true, "\(answer)")
                try first.publish(AudioDevice.end(session: open, lastSequence: 0))
                await first.close()
                await second.close()
                await ml.stop()
            }
        }

        @Test func aSessionLongerThanItsLimitIsClosed() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.maxSessionSeconds": 1, "dialog.sessionTimeoutMs": 60000])
                let device = try await voice.device("speaker-17")
                let session = UUID()
                try device.publish(AudioDevice.start(session: session))
                // Audio keeps coming (so the session is never idle) for longer than a second.
                let frames = try voice.opusFrames
                for index in 0..<frames.count {
                    try device.publish(AudioDevice.frame(session: session, sequence: UInt32(index), payload: frames[index]))
                    try await Task.sleep(for: .milliseconds(40))
                    if voice.responses(for: "speaker-17").contains(where: \.isAnswer) { break }
                }
                let answer = try await voice.answer(device: "speaker-17", session: session)
                #expect(answer.code == "session_too_long", "\(answer)")
                await device.close()
                await ml.stop()
            }
        }
    }
}
