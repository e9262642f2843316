import BrokerTestSupport
import Foundation
import MLFake
import Testing

extension IntegrationSuite {
    /// SIGHUP (`systemctl reload`): the configuration file is read again; log level, limits, ML
    /// endpoints and upstream settings change in the running daemon; other keys are named.
    @Suite struct ConfigReloadTests {
        static func payload(bytes: Int) -> String {
            #"{"eventId":"big-\#(bytes)","type":"t","timestamp":1,"data":"\#(String(repeating: "x", count: bytes))"}"#
        }

        @Test func limitsAndLogLevelChangeLiveAndRestartOnlyKeysAreNamed() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["log.level": "info", "limits.maxPayloadBytes": 8192])
                let device = bed.device("dev-r")
                try await device.publishOnce(Self.payload(bytes: 3000))
                let first = try await bed.waitForAcks(count: 1) { $0.deviceId == "dev-r" }
                #expect(first.first?.status == "stored")
                #expect(!bed.gateway.currentRunLog.contains(" DEBUG "))

                try bed.gateway.reload(["limits.maxPayloadBytes": 2048, "log.level": "debug", "mqtt.keepAliveSeconds": 20])
                try await bed.gateway.waitForLog("configuration reloaded")
                let log = bed.gateway.currentRunLog
                #expect(log.contains("limits.maxPayloadBytes"), "\(bed.gateway.logTail())")
                #expect(log.contains("configuration keys that change only at restart differ from the running ones"))
                #expect(log.contains("mqtt.keepAliveSeconds"))

                try await device.publishOnce(Self.payload(bytes: 2500))
                let acks = try await bed.waitForAcks(count: 2) { $0.deviceId == "dev-r" }
                #expect(acks.last?.status == "rejected")
                #expect(acks.last?.reason == "payload too large")
                try await bed.gateway.waitForLog("rejected device event")  // a debug line: the level changed
            }
        }

        @Test func aBrokenFileChangesNothingAndIsLoggedAtError() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["limits.maxPayloadBytes": 8192])
                try bed.gateway.reload(["limits.maxPayloadBytes": "lots"])
                try await bed.gateway.waitForLog("configuration reload failed; the running configuration stays")
                try await bed.device("dev-s").publishOnce(Self.payload(bytes: 3000))
                let ack = try await bed.waitForAcks(count: 1) { $0.deviceId == "dev-s" }
                #expect(ack.first?.status == "stored")
                #expect(bed.gateway.isRunning)
            }
        }

        @Test func mlEndpointsChangeWithoutARestart() async throws {
            try await withSandbox { sandbox in
                let old = FakeMLService(name: "ml-old")
                let oldPort = try await old.start()
                let new = FakeMLService(name: "ml-new")
                let newPort = try await new.start()
                let adminPort = try FreePort.next()
                let voice = try await VoiceBed.start(in: sandbox, ml: [old, new], endpoints: [oldPort], overrides: ["admin.port": .int(adminPort)])
                let device = try await voice.device("speaker-r")
                let first = try await device.speak(frames: try voice.opusFrames, userId: nil)
                #expect(try await voice.answer(device: "speaker-r", session: first).payload["replyText"] as? String == "OK from ml-old")

                try voice.bed.gateway.reload(["ml.endpoints": .raw("[\"127.0.0.1:\(newPort)\"]"), "ml.breaker.minimumCalls": 7])
                try await voice.bed.gateway.waitForLog("ML endpoints reconfigured")
                let endpoints = try #require(try await AdminClient(port: adminPort).get("/api/ml/endpoints").json as? [[String: Any]])
                #expect(endpoints.map { $0["endpoint"] as? String } == ["127.0.0.1:\(newPort)"])

                let second = try await device.speak(frames: try voice.opusFrames, userId: nil)
                #expect(try await voice.answer(device: "speaker-r", session: second).payload["replyText"] as? String == "OK from ml-new")
                #expect(old.streamCount == 1)
                // A device that only speaks is in the device list too.
                let devices = try #require(try await AdminClient(port: adminPort).get("/api/devices").json as? [[String: Any]])
                #expect(devices.first { $0["deviceId"] as? String == "speaker-r" }?["lastChannel"] as? String == "audio")
                // Its client would otherwise go on reconnecting to this test's broker for the rest of the run.
                await device.close()
            }
        }

        @Test func upstreamMovesToAnotherBrokerWithoutLosingOrRepeatingAnEvent() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox)
                let other = try MosquittoBroker("upstream-b", in: sandbox)
                try await other.start()
                let otherRecorder = TopicRecorder("upstream-b", brokerPort: other.port, filters: ["hubs/#"], in: sandbox)
                try await otherRecorder.start()

                let sent = Dictionary(uniqueKeysWithValues: ["m1", "m2", "m3"].map { device in
                    (device, (0..<100).map { DeviceEvent(deviceId: device, seq: $0) })
                })
                let batches = bed.batches(sent)
                let publishing = Task { try await DeviceClient.publishConcurrently(batches, interval: .milliseconds(5)) }
                _ = try await bed.waitForUpstream(count: 60)
                try bed.gateway.reload(["upstream.port": .int(other.port)])
                try await publishing.value
                try await bed.gateway.waitForLog("upstream connection switched to the new settings")

                let allIds = Set(sent.values.flatMap { $0.map(\.eventId) })
                let deadline = ContinuousClock.now + .seconds(30)
                var first: [UpstreamEvent] = []
                var second: [UpstreamEvent] = []
                while ContinuousClock.now < deadline {
                    first = bed.upstreamEvents
                    second = otherRecorder.messages.map(UpstreamEvent.init)
                    if Set((first + second).compactMap(\.eventId)).isSuperset(of: allIds) { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                let firstIds = first.compactMap(\.eventId)
                let secondIds = second.compactMap(\.eventId)
                #expect(Set(firstIds + secondIds) == allIds, "lost: \(allIds.subtracting(firstIds + secondIds).sorted().prefix(10))\n\(bed.gateway.logTail())")
                #expect(firstIds.count == Set(firstIds).count && secondIds.count == Set(secondIds).count, "an event was sent twice to one broker")
                #expect(Set(firstIds).isDisjoint(with: secondIds), "an event went to both brokers")
                #expect(!secondIds.isEmpty && !firstIds.isEmpty)
                #expect(DeliveryCheck.orderProblems(first + second, sent: sent) == [])
                otherRecorder.stop()
            }
        }
    }
}
