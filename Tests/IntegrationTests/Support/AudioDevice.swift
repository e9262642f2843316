import Audio
import BrokerTestSupport
import Foundation
import Logging
import MQTT
import Synchronization

/// A test PCM file: 16 kHz mono S16LE "speech" — tone bursts with a moving pitch between short
/// silences — written to the sandbox and read back, as a device would read its recording.
enum TestSpeech {
    static let sampleRate = 16000

    static func writeFile(in sandbox: Sandbox, seconds: Double = 1.2) throws -> URL {
        var samples: [Int16] = []
        let count = Int(seconds * Double(sampleRate))
        for i in 0..<count {
            let t = Double(i) / Double(sampleRate)
            // 300 ms bursts, 100 ms pauses; pitch glides like a voice.
            let inBurst = (i / (sampleRate / 10)) % 4 != 3
            let pitch = 180 + 60 * sin(2 * .pi * 1.5 * t)
            let value = inBurst ? 9000 * sin(2 * .pi * pitch * t) + 2500 * sin(2 * .pi * 3 * pitch * t) : 0
            samples.append(Int16(max(-32767, min(32767, value))))
        }
        let url = sandbox.url("speech-16k-mono.raw")
        let data = samples.withUnsafeBufferPointer { Data(buffer: $0) }
        try data.write(to: url)
        return url
    }

    /// The file's samples.
    static func read(_ url: URL) throws -> [Int16] {
        let data = try Data(contentsOf: url)
        return stride(from: 0, to: data.count - 1, by: 2).map { Int16(bitPattern: UInt16(data[$0]) | UInt16(data[$0 + 1]) << 8) }
    }

    /// 20 ms Opus packets (libopus, VOIP, 24 kbit/s), as a device sends them.
    static func opusFrames(_ samples: [Int16]) throws -> [[UInt8]] {
        let encoder = try OpusEncoder(sampleRate: Int32(sampleRate), channels: 1)
        let frame = encoder.frameSize(milliseconds: 20)
        return try stride(from: 0, to: samples.count - frame + 1, by: frame).map { try encoder.encode(Array(samples[$0..<$0 + frame])) }
    }

    /// 20 ms runs of PCM bytes.
    static func pcmFrames(_ samples: [Int16]) -> [[UInt8]] {
        let frame = sampleRate / 50
        return stride(from: 0, to: samples.count - frame + 1, by: frame).map { start in
            samples[start..<start + frame].flatMap { [UInt8(truncatingIfNeeded: UInt16(bitPattern: $0)), UInt8(UInt16(bitPattern: $0) >> 8)] }
        }
    }
}

/// A device that speaks CONTRACTS.md §1 audio over its own MQTT connection (libmosquitto through
/// the gateway's MQTT module, QoS 1).
final class AudioDevice {
    let id: String
    private let client: MQTTClient
    /// Types of the answers (`DIALOG_RESPONSE`, `ERROR`) heard on its own subscription, by session.
    private let answers = Answers()

    final class Answers: Sendable {
        let bySession = Mutex<[String: String]>([:])
        /// Whether the broker has acknowledged the device's subscription (SUBACK).
        let subscribed = Mutex(false)
    }
    private var listener: Task<Void, Never>?
    private var eventListener: Task<Void, Never>?

    /// - Parameter account: the device's broker account (username, password), whose client id must be
    ///   the device id; without one, an anonymous connection with a client id of its own.
    init(_ id: String, brokerPort: Int, account: (username: String, password: String)? = nil) {
        self.id = id
        var configuration = MQTTClientConfiguration(
            host: "127.0.0.1", port: brokerPort, clientID: account == nil ? "audio-\(id)-\(UUID().uuidString.prefix(6))" : id,
            cleanSession: true)
        configuration.username = account?.username
        configuration.password = account?.password
        configuration.subscriptions = ["device/\(id)/response"]
        client = MQTTClient(configuration: configuration, logger: Logger(label: "audio-device"))
    }

    func connect(timeout: Duration = .seconds(10)) async throws {
        client.start()
        let (client, answers) = (self.client, self.answers)
        listener = Task {
            for await batch in client.messages {
                for message in batch {
                    guard let json = JSON.object(Data(message.payload)), let type = json["type"] as? String,
                        let session = (json["payload"] as? [String: Any])?["session"] as? String
                    else { continue }
                    if type == "DIALOG_RESPONSE" || type == "ERROR" { answers.bySession.withLock { $0[session] = type } }
                }
            }
        }
        eventListener = Task {
            for await event in client.events {
                if case .subscribed = event { answers.subscribed.withLock { $0 = true } }
            }
        }
        // Connected and its answers' topic subscribed: an answer sent from now on reaches it.
        try await Poll.until("audio device \(id) to connect and subscribe", timeout: timeout) {
            client.isConnected && answers.subscribed.withLock { $0 }
        }
    }

    /// Waits for the answer to `session` on the device's own subscription (reacting within a
    /// millisecond, as a device does) and returns its type.
    func waitForAnswer(_ session: UUID, timeout: Duration = .seconds(20)) async throws -> String {
        let key = session.uuidString.lowercased()
        let deadline = ContinuousClock.now + timeout
        while true {
            if let type = answers.bySession.withLock({ $0[key] }) { return type }
            guard ContinuousClock.now < deadline else { throw HarnessError("no answer to \(key) reached device \(id)") }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    func close() async {
        await client.stop()
        listener?.cancel()
        eventListener?.cancel()
    }

    func publish(_ bytes: [UInt8]) throws {
        try client.publish(topic: "device/\(id)/audio", payload: bytes, qos: 1)
    }

    static func start(session: UUID, codec: String = "opus", sampleRate: Int = 16000, userId: String? = nil) -> [UInt8] {
        var json: [String: Any] = ["session": session.uuidString.lowercased(), "codec": codec, "sampleRate": sampleRate, "channels": 1, "language": "en-US"]
        if let userId { json["userId"] = userId }
        return [0x01] + Array(try! JSONSerialization.data(withJSONObject: json))
    }

    static func frame(session: UUID, sequence: UInt32, payload: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = [0x02]
        withUnsafeBytes(of: session.uuid) { bytes.append(contentsOf: $0) }
        bytes += [UInt8(sequence >> 24), UInt8(sequence >> 16 & 0xFF), UInt8(sequence >> 8 & 0xFF), UInt8(sequence & 0xFF)]
        return bytes + payload
    }

    static func end(session: UUID, lastSequence: Int) -> [UInt8] {
        [0x03] + Array(#"{"session":"\#(session.uuidString.lowercased())","lastSeq":\#(lastSequence)}"#.utf8)
    }

    /// One whole session: start, every frame (in `order` when given), end.
    func speak(
        session: UUID = UUID(), frames: [[UInt8]], codec: String = "opus", userId: String? = nil, order: [Int]? = nil,
        interval: Duration = .milliseconds(2)
    ) async throws -> UUID {
        try publish(Self.start(session: session, codec: codec, userId: userId))
        for index in order ?? Array(frames.indices) {
            try publish(Self.frame(session: session, sequence: UInt32(index), payload: frames[index]))
            if interval > .zero { try await Task.sleep(for: interval) }
        }
        try publish(Self.end(session: session, lastSequence: frames.count - 1))
        return session
    }
}
