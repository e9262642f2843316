import BrokerTestSupport
import Foundation
import MLFake
import ServiceFakes
import Testing

extension IntegrationSuite {
    /// Issue 12's attacks on the device edge of voice and events, each against the real daemon, a
    /// real mosquitto and a scripted ML server over gRPC: every attack fails, and afterwards an
    /// honest device's event is still acked `stored` and an honest dialog still answered.
    @Suite struct DialogTrustBoundaryTests {
        /// The honest device's proof that the hub still serves: an event acked `stored`.
        static func honestEventIsStored(_ bed: TestBed, tag: String) async throws {
            let event = DeviceEvent(deviceId: "honest-1", seq: 0, eventId: "honest-\(tag)")
            try await bed.device("honest-1").publish([event])
            let acks = try await bed.waitForAcks(count: 1, timeout: .seconds(15)) { $0.eventId == event.eventId }
            #expect(acks.last?.status == "stored", "\(acks)")
        }

        /// The ML service's record of a device's stream (it is written just after the stream ends).
        static func stream(of device: String, at ml: FakeMLService, within timeout: Duration = .seconds(10)) async throws -> FakeMLService.Stream {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if let stream = ml.streams.withLock({ $0.first { $0.config.deviceID == device } }) { return stream }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw HarnessError("the ML service recorded no stream of \(device)")
        }

        @Test func aFrameNumberedAtTheTopOfTheRangeDoesNotStopAnotherDevicesDialog() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox)
                let attacker = try await voice.device("rogue-1")
                let frames = try voice.opusFrames
                let session = UUID()
                try attacker.publish(AudioDevice.start(session: session))
                try attacker.publish(AudioDevice.frame(session: session, sequence: 0, payload: frames[0]))
                try attacker.publish(AudioDevice.frame(session: session, sequence: 0xFFFF_FFF0, payload: frames[1]))
                try attacker.publish(AudioDevice.end(session: session, lastSequence: Int(UInt32.max)))

                // Another device's whole dialog is answered meanwhile, and so is the attacker's.
                let honest = try await voice.device("speaker-h")
                let next = try await honest.speak(frames: frames)
                #expect(try await voice.answer(device: "speaker-h", session: next).type == "DIALOG_RESPONSE")
                #expect(try await voice.answer(device: "rogue-1", session: session).type == "DIALOG_RESPONSE")
                let stream = try await Self.stream(of: "rogue-1", at: ml)
                #expect(stream.chunks == [frames[0], frames[1]], "the two frames that came, in order")
                try await Self.honestEventIsStored(voice.bed, tag: "top-of-range")
                await attacker.close()
                await honest.close()
                await ml.stop()
            }
        }

        @Test func aSessionOverItsFrameBudgetIsStoppedWithSessionLimit() async throws {
            try await withSandbox { sandbox in
                let admin = try FreePort.next()
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(
                    in: sandbox, overrides: ["dialog.maxFramesPerSession": 20, "admin.port": .int(admin)])
                let device = try await voice.device("chatty-1")
                let frames = try voice.opusFrames
                #expect(frames.count > 20)
                let session = try await device.speak(frames: frames)
                let answer = try await voice.answer(device: "chatty-1", session: session)
                #expect(answer.code == "session_limit", "\(answer)")
                #expect((answer.payload["message"] as? String)?.contains("dialog.maxFramesPerSession") == true, "\(answer)")
                _ = try await AdminClient(port: admin).waitForMetric(#"gateway_dialog_audio_rejected_total{reason="session_limit"}"#) { $0 >= 1 }

                // Within the budget the same device is answered.
                let short = try await device.speak(frames: Array(frames.prefix(20)))
                #expect(try await voice.answer(device: "chatty-1", session: short).type == "DIALOG_RESPONSE")
                try await Self.honestEventIsStored(voice.bed, tag: "frame-budget")
                await device.close()
                await ml.stop()
            }
        }

        @Test func aSessionOverItsAudioByteBudgetIsStoppedWithSessionLimit() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox, overrides: ["dialog.maxSessionAudioBytes": 4096])
                let device = try await voice.device("chatty-2")
                let big = [UInt8](repeating: 0x55, count: 1000)
                let session = try await device.speak(frames: Array(repeating: big, count: 10))
                let answer = try await voice.answer(device: "chatty-2", session: session)
                #expect(answer.code == "session_limit", "\(answer)")
                #expect((answer.payload["message"] as? String)?.contains("dialog.maxSessionAudioBytes") == true, "\(answer)")
                // Under load the session can be cut before its call to the service is opened: then
                // nothing reached the service, which is within the budget too.
                let stream = try? await Self.stream(of: "chatty-2", at: ml, within: .seconds(3))
                #expect((stream?.chunks ?? []).reduce(0) { $0 + $1.count } <= 4096, "no more than the budget reached the service")
                try await Self.honestEventIsStored(voice.bed, tag: "byte-budget")
                await device.close()
                await ml.stop()
            }
        }

        @Test func audioPilingUpForAStalledMLServiceIsCutAtItsBudget() async throws {
            try await withSandbox { sandbox in
                var script = FakeMLService.Script()
                script.stallAfterChunks = 5
                let ml = FakeMLService(name: "ml-stalled", script: script)
                let port = try await ml.start()
                let voice = try await VoiceBed.start(
                    in: sandbox, ml: [ml], endpoints: [port],
                    overrides: ["ml.codec": "pcm_s16le", "dialog.maxBufferedAudioBytes": 16384])
                let device = try await voice.device("firehose-1")
                // 600 frames of 20 ms PCM (375 KiB): far more than HTTP/2's window lets through to
                // a service that stopped reading, so the rest waits in the gateway.
                let pcm = TestSpeech.pcmFrames(Array(repeating: voice.speech, count: 10).flatMap { $0 })
                let session = UUID()
                try device.publish(AudioDevice.start(session: session, codec: "pcm_s16le"))
                for (index, frame) in pcm.prefix(600).enumerated() {
                    try device.publish(AudioDevice.frame(session: session, sequence: UInt32(index), payload: frame))
                }
                let answer = try await voice.answer(device: "firehose-1", session: session)
                #expect(answer.code == "session_limit", "\(answer)")
                #expect((answer.payload["message"] as? String)?.contains("dialog.maxBufferedAudioBytes") == true, "\(answer)")
                try await Self.honestEventIsStored(voice.bed, tag: "stalled-ml")
                await device.close()
                await ml.stop()
            }
        }

        @Test func nobodyMaySpeakOrSendEventsAsTheHub() async throws {
            try await withSandbox { sandbox in
                let (voice, ml) = try await VoiceBed.startWithOneEndpoint(in: sandbox)
                // Events under the hub's id are refused, and say so.
                try await voice.bed.device("hub-test").publish([DeviceEvent(deviceId: "hub-test", seq: 0, eventId: "forged-hub-event")])
                let acks = try await voice.bed.waitForAcks(count: 1) { $0.eventId == "forged-hub-event" }
                #expect(acks.last?.status == "rejected" && acks.last?.reason == "reserved device id", "\(acks)")

                // Audio under the hub's id (which would drive the hub's speaker) starts no session.
                let impostor = try await voice.device("hub-test")
                _ = try await impostor.speak(frames: try voice.opusFrames)
                try await voice.bed.gateway.waitForLog("ignored audio from the broker under the hub's own id")
                // An honest dialog after it is the first and only stream the ML service sees.
                let honest = try await voice.device("speaker-h2")
                let session = try await honest.speak(frames: try voice.opusFrames)
                #expect(try await voice.answer(device: "speaker-h2", session: session).type == "DIALOG_RESPONSE")
                _ = try await Self.stream(of: "speaker-h2", at: ml)
                #expect(ml.streams.withLock { $0.map(\.config.deviceID) } == ["speaker-h2"])
                try await Self.honestEventIsStored(voice.bed, tag: "hub-id")
                await impostor.close()
                await honest.close()
                await ml.stop()
            }
        }

        @Test func aDeviceCannotSpeakForAUserItIsNotRegisteredTo() async throws {
            let ml = FakeMLService(name: "ml-who")
            let port = try await ml.start()
            let admin = try FreePort.next()
            try await DeviceRegistrationTests().withRegistration(extra: [
                "ml.endpoints": .raw("[\"127.0.0.1:\(port)\"]"), "admin.port": .int(admin),
            ]) { registration in
                let (bed, services, responses, sandbox) = (registration.bed, registration.services, registration.responses, registration.bed.sandbox)
                services.users.withLock {
                    $0["u-1"] = .init(quota: 3, count: 0)
                    $0["u-2"] = .init(quota: 3, count: 0)
                }
                // spk-2 belongs to u-2, who is blocked.
                try await DeviceClient.publishOnce(
                    topic: "device/spk-2/register", payload: Data(#"{"requestId":"r-spk-2","userId":"u-2","type":"speaker","premium":false}"#.utf8),
                    brokerPort: bed.deviceBroker.port, in: sandbox.directory)
                _ = try await responses.waitUntil("spk-2 registered", timeout: .seconds(20)) { messages in
                    messages.contains { ($0.json?["payload"] as? [String: Any])?["status"] as? String == "registered" }
                }
                // Then u-2 is blocked: the block must hold whatever the device claims.
                services.users.withLock { $0["u-2"]?.blocked = true }

                let device = AudioDevice("spk-2", brokerPort: bed.deviceBroker.port)
                try await device.connect()
                let frames = try TestSpeech.opusFrames(TestSpeech.read(TestSpeech.writeFile(in: sandbox)))
                func answer(_ session: UUID) async throws -> [String: Any] {
                    let id = session.uuidString.lowercased()
                    let messages = try await responses.waitUntil("the answer to \(id)", timeout: .seconds(20)) { messages in
                        messages.contains { ($0.json?["payload"] as? [String: Any])?["session"] as? String == id && $0.json?["type"] as? String != "TRANSCRIPT_PARTIAL" }
                    }
                    return try #require(messages.last { ($0.json?["payload"] as? [String: Any])?["session"] as? String == id }?.json)
                }

                // Naming u-1 to escape u-2's block: refused before any audio reaches the service.
                let claimed = try await device.speak(frames: frames, userId: "u-1")
                let refused = try await answer(claimed)
                #expect(refused["type"] as? String == "ERROR", "\(refused)")
                #expect((refused["payload"] as? [String: Any])?["code"] as? String == "user_mismatch", "\(refused)")
                _ = try await AdminClient(port: admin).waitForMetric(#"gateway_dialog_audio_rejected_total{reason="user_mismatch"}"#) { $0 >= 1 }

                // Without a userId (or with its own), the dialog runs as u-2: blocked, as it should be.
                let own = try await device.speak(frames: frames)
                let answered = try await answer(own)
                #expect((answered["payload"] as? [String: Any])?["intent"] as? String == "user.blocked", "\(answered)")
                let events = try await bed.waitForUpstream(count: 1) { $0.type == "DialogCompleted" }
                let data = try #require(events.first { $0.type == "DialogCompleted" }?.data as? [String: Any])
                #expect(data["userId"] as? String == "u-2")
                #expect(ml.intentCount == 0, "no intent analysis for anyone in this test")
                _ = try await Self.stream(of: "spk-2", at: ml)
                #expect(ml.streams.withLock { $0.map(\.config.sessionID) } == [own.uuidString.lowercased()], "the refused session sent no audio")
                try await Self.honestEventIsStored(bed, tag: "user-mismatch")
                await device.close()
            }
            await ml.stop()
        }
    }
}
