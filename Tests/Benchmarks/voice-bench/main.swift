// The voice benchmark (scripts/bench, section 7; figures in BENCHMARKS.md). It plays devices and
// the ML service around a real gateway and a real mosquitto on loopback, all timed on one clock:
//
//   latency      one device, sessions of 1.2 s of speech at real-time pace: device frame publish
//                -> arrival at the ML service (per frame and the last frame of each session), and
//                ML intent answer -> DIALOG_RESPONSE at the device; baseline in the same run: one
//                mosquitto hop (QoS 1 publish -> subscriber) of an 80-byte message at 50/s
//   concurrency  --sessions devices, each speaking session after session for --seconds: answers,
//                errors, gateway CPU and peak RSS, for ml.codec opus (pass-through) and pcm_s16le
//                (the gateway decodes Opus); baseline: the idle gateway over the same time
//   opus         libopus encode and decode cost per 20 ms frame and per real-time stream
//   balancing    3 ML endpoints, one answering AnalyzeIntent 300 ms late, --sessions devices:
//                dialog latency (end message -> answer) with roundRobin vs leastOutstanding
//
//   wyoming      the same dialogs against a Wyoming ASR + intent server answering at once
//                (WyomingBenchServer) and, in the same run, the gRPC fake: last frame -> server, server
//                answer -> device; then --sessions devices over Wyoming vs over gRPC: CPU, peak RSS
//
//   voice-bench --gateway PATH [--runs 3] [--sessions 50] [--seconds 20] [--only latency,concurrency,opus,balancing,wyoming]
import Audio
import Foundation
import Logging
import MLFake
import MQTT
import Synchronization

var options: [String: String] = ["runs": "3", "sessions": "50", "seconds": "20", "only": "latency,concurrency,opus,balancing"]
var argumentIndex = 1
while argumentIndex + 1 < CommandLine.arguments.count {
    options[String(CommandLine.arguments[argumentIndex].dropFirst(2))] = CommandLine.arguments[argumentIndex + 1]
    argumentIndex += 2
}
guard let gatewayPath = options["gateway"] else {
    FileHandle.standardError.write(Data("usage: voice-bench --gateway PATH [--runs N] [--sessions N] [--seconds N] [--only ...]\n".utf8))
    exit(2)
}
let runs = Int(options["runs"]!) ?? 3
let sessionCount = Int(options["sessions"]!) ?? 50
let loadSeconds = Int(options["seconds"]!) ?? 20
let sections = Set(options["only"]!.split(separator: ",").map(String.init))
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = .error
    return handler
}


let processes = try Processes()
signal(SIGINT) { _ in exit(130) }
atexit { processes.stopAll() }

/// 1.2 s of "speech" (pitch-gliding bursts between pauses), 16 kHz mono, as 60 Opus packets.
let speech: [Int16] = (0..<19200).map { i in
    let t = Double(i) / 16000
    let inBurst = (i / 1600) % 4 != 3
    let pitch = 180 + 60 * sin(2 * .pi * 1.5 * t)
    return Int16(inBurst ? 9000 * sin(2 * .pi * pitch * t) + 2500 * sin(2 * .pi * 3 * pitch * t) : 0)
}
let encoder = try OpusEncoder(sampleRate: 16000, channels: 1)
let opusFrames: [[UInt8]] = try stride(from: 0, to: speech.count, by: 320).map { try encoder.encode(Array(speech[$0..<$0 + 320])) }

func startBroker(_ name: String) async throws -> (port: Int, process: Process) {
    let port = try freePort()
    let directory = processes.directory.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let config = directory.appendingPathComponent("mosquitto.conf")
    try """
        listener \(port) 127.0.0.1
        allow_anonymous true
        user root
        max_queued_messages 0
        max_inflight_messages 0
        set_tcp_nodelay true
        """.write(to: config, atomically: true, encoding: .utf8)
    let process = try processes.launch("/usr/sbin/mosquitto", ["-c", config.path], log: directory.appendingPathComponent("log"))
    try await waitFor("mosquitto on \(port)") { (try? String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8))?.contains("running") ?? false }
    return (port, process)
}

func startGateway(_ name: String, devicePort: Int, mlPorts: [Int], wyomingPorts: [Int] = [], extra: [String] = []) async throws -> Process {
    let directory = processes.directory.appendingPathComponent(name)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let endpoints = (mlPorts.map { "\"127.0.0.1:\($0)\"" } + wyomingPorts.map { "\"wyoming://127.0.0.1:\($0)\"" }).joined(separator: ", ")
    let yaml = """
        hub: {id: bench}
        mqtt: {port: \(devicePort), clientId: \(name)}
        upstream: {port: \(try freePort()), reconnectBaseMs: 1000, reconnectCapMs: 5000}
        log: {level: info, format: text}
        store: {path: \(directory.path)/outbox.db, requireSyncedClock: false}
        dialog: {partials: true, maxSessions: 256, maxSessionsPerDevice: 1, sessionTimeoutMs: 10000}
        ml:
          endpoints: [\(endpoints)]
        \(extra.map { "  " + $0 }.joined(separator: "\n"))
        """
    let config = directory.appendingPathComponent("gateway.yaml")
    try yaml.write(to: config, atomically: true, encoding: .utf8)
    let log = directory.appendingPathComponent("log")
    let process = try processes.launch(gatewayPath, ["run", "--config", config.path], log: log)
    try await waitFor("the gateway to be ready") { (try? String(contentsOf: log, encoding: .utf8))?.contains("gateway ready") ?? false }
    return process
}

/// Several devices connected to `port`.
func connectDevices(_ count: Int, port: Int, prefix: String) async throws -> [BenchDevice] {
    var devices: [BenchDevice] = []
    for index in 0..<count {
        let device = BenchDevice("\(prefix)-\(index)", port: port)
        try await device.connect()
        devices.append(device)
    }
    return devices
}

say("voice-bench — \(ISO8601DateFormatter().string(from: Date())), \(ProcessInfo.processInfo.activeProcessorCount) cores, runs=\(runs), sessions=\(sessionCount)")
do {

// MARK: - latency

if sections.contains("latency") {
    say("\n== latency: one device, 20 sessions of 1.2 s at real-time pace (60 Opus frames each)")
    var hopP50: [Double] = [], hopP99: [Double] = []
    var frameP50: [Double] = [], frameP99: [Double] = [], lastP50: [Double] = [], lastP99: [Double] = []
    var answerP50: [Double] = [], answerP99: [Double] = []
    for run in 1...runs {
        let broker = try await startBroker("lat-broker-\(run)")
        // Baseline: one mosquitto hop, QoS 1, 80 bytes at 50/s.
        let publisher = BenchDevice("hop-pub-\(run)", port: broker.port)
        try await publisher.connect()
        var subscriberConfiguration = MQTTClientConfiguration(host: "127.0.0.1", port: broker.port, clientID: "hop-sub-\(run)", cleanSession: true)
        subscriberConfiguration.subscriptions = ["bench/hop"]
        let subscriber = MQTTClient(configuration: subscriberConfiguration, logger: Logger(label: "hop"))
        subscriber.start()
        try await waitFor("the hop subscriber") { subscriber.isConnected }
        try await Task.sleep(for: .milliseconds(200))
        let sent = Mutex<[Int: ContinuousClock.Instant]>([:])
        let hop = Mutex(Sample())
        let receiving = Task {
            for await batch in subscriber.messages {
                let now = ContinuousClock.now
                for message in batch {
                    let index = Int(String(decoding: message.payload.prefix(8), as: UTF8.self).trimmingCharacters(in: .whitespaces)) ?? -1
                    if let at = sent.withLock({ $0[index] }) { hop.withLock { $0.add(at.duration(to: now)) } }
                }
            }
        }
        for index in 0..<500 {
            let payload = Array(String(format: "%8d", index).utf8) + [UInt8](repeating: 0x55, count: 72)
            sent.withLock { $0[index] = .now }
            try publisher.client.publish(topic: "bench/hop", payload: payload, qos: 1)
            try await Task.sleep(for: .milliseconds(20))
        }
        try await waitFor("hop messages") { hop.withLock { $0.values.count } >= 500 }
        receiving.cancel()
        await subscriber.stop()
        await publisher.close()

        let ml = FakeMLService(name: "lat")
        let mlPort = try await ml.start()
        let gateway = try await startGateway("lat-gw-\(run)", devicePort: broker.port, mlPorts: [mlPort])
        let device = BenchDevice("lat-\(run)", port: broker.port)
        try await device.connect()
        var frames = Sample(), last = Sample(), answer = Sample()
        for _ in 0..<20 {
            let session = UUID()
            let published = try await device.speak(session: session, frames: opusFrames)
            let reply = try await device.waitForAnswer(session)
            guard reply.type == "DIALOG_RESPONSE" else { throw BenchError("session failed: \(reply.type)\n" + ((try? String(contentsOf: processes.directory.appendingPathComponent("lat-gw-\(run)/log"), encoding: .utf8)) ?? "")) }
            let id = session.uuidString.lowercased()
            guard let stream = ml.streams.withLock({ $0.first { $0.config.sessionID == id } }),
                let intent = ml.intents.withLock({ $0.last { $0.request.context["sessionId"] == id } }), let answered = intent.answeredAt
            else { throw BenchError("the ML service did not see session \(id)") }
            for (sentAt, arrived) in zip(published.frames, stream.arrivals) { frames.add(sentAt.duration(to: arrived)) }
            if let lastSent = published.frames.last, let lastArrival = stream.arrivals.last { last.add(lastSent.duration(to: lastArrival)) }
            answer.add(answered.duration(to: reply.at))
        }
        await device.close()
        processes.stop(gateway)
        processes.stop(broker.process, force: true)
        await ml.stop()
        let baseline = hop.withLock { $0 }
        say("   run \(run): mosquitto hop \(baseline.summary)")
        say("          frame in -> ML \(frames.summary)")
        say("          last frame -> ML \(last.summary)")
        say("          ML answer -> device \(answer.summary)")
        hopP50.append(baseline.percentile(0.5)); hopP99.append(baseline.percentile(0.99))
        frameP50.append(frames.percentile(0.5)); frameP99.append(frames.percentile(0.99))
        lastP50.append(last.percentile(0.5)); lastP99.append(last.percentile(0.99))
        answerP50.append(answer.percentile(0.5)); answerP99.append(answer.percentile(0.99))
    }
    say("   median of \(runs) runs (ms):")
    say("     baseline mosquitto hop      p50 \(medianLine(hopP50))  p99 \(medianLine(hopP99))")
    say("     device frame -> ML service  p50 \(medianLine(frameP50))  p99 \(medianLine(frameP99))")
    say("     last frame -> ML service    p50 \(medianLine(lastP50))  p99 \(medianLine(lastP99))")
    say("     ML answer -> device         p50 \(medianLine(answerP50))  p99 \(medianLine(answerP99))")
}

// MARK: - concurrency

/// `devices` devices speak session after session for `seconds`; returns answers, errors, CPU %, peak RSS.
func load(devices: [BenchDevice], seconds: Int, gateway: Process) async throws -> (answered: Int, errors: Int, cpu: Double, rssKB: Int, latency: Sample) {
    let pid = gateway.processIdentifier
    let cpuBefore = ProcStat.cpuSeconds(pid)
    let started = ContinuousClock.now
    let peak = Mutex(0)
    let sampling = Task {
        while !Task.isCancelled {
            let rss = ProcStat.rssKB(pid)
            peak.withLock { $0 = max($0, rss) }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
    let deadline = ContinuousClock.now + .seconds(seconds)
    let results = try await withThrowingTaskGroup(of: (Int, Int, Sample).self) { group in
        for (index, device) in devices.enumerated() {
            group.addTask {
                // Spread the starts over one session length.
                try await Task.sleep(for: .milliseconds(1200 * index / max(1, devices.count)))
                var answered = 0, errors = 0
                var latency = Sample()
                while ContinuousClock.now < deadline {
                    let session = UUID()
                    let published = try await device.speak(session: session, frames: opusFrames)
                    let reply = try await device.waitForAnswer(session)
                    if reply.type == "DIALOG_RESPONSE" { answered += 1 } else { errors += 1 }
                    latency.add(published.end.duration(to: reply.at))
                }
                return (answered, errors, latency)
            }
        }
        var total = (0, 0, Sample())
        for try await (answered, errors, latency) in group {
            total.0 += answered
            total.1 += errors
            total.2.values += latency.values
        }
        return total
    }
    sampling.cancel()
    let elapsed = started.duration(to: .now)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let cpu = (ProcStat.cpuSeconds(pid) - cpuBefore) / seconds * 100
    return (results.0, results.1, cpu, peak.withLock { $0 }, results.2)
}

if sections.contains("concurrency") {
    say("\n== concurrency: \(sessionCount) devices speaking session after session (1.2 s each, real-time pace) for \(loadSeconds) s")
    for codec in ["opus", "pcm_s16le"] {
        var idleCPU: [Double] = [], idleRSS: [Double] = [], cpus: [Double] = [], rss: [Double] = [], rates: [Double] = [], p99: [Double] = []
        for run in 1...runs {
            let broker = try await startBroker("con-broker-\(codec)-\(run)")
            let ml = FakeMLService(name: "con")
            ml.script.withLock {
                $0.keepChunkBytes = false
                $0.partialEvery = 25
            }
            let mlPort = try await ml.start()
            let gateway = try await startGateway("con-gw-\(codec)-\(run)", devicePort: broker.port, mlPorts: [mlPort], extra: ["codec: \(codec)"])
            let devices = try await connectDevices(sessionCount, port: broker.port, prefix: "con\(run)")
            // Baseline: the same gateway idle (devices connected, nobody speaking).
            let pid = gateway.processIdentifier
            let idleStart = ProcStat.cpuSeconds(pid)
            try await Task.sleep(for: .seconds(5))
            idleCPU.append((ProcStat.cpuSeconds(pid) - idleStart) / 5 * 100)
            idleRSS.append(Double(ProcStat.rssKB(pid)))
            let result = try await load(devices: devices, seconds: loadSeconds, gateway: gateway)
            for device in devices { await device.close() }
            processes.stop(gateway)
            processes.stop(broker.process, force: true)
            await ml.stop()
            say(String(format: "   run %d (%@): %d answered, %d errors, gateway CPU %.1f %% of one core, peak RSS %d kB, end -> answer %@",
                         run, codec, result.answered, result.errors, result.cpu, result.rssKB, result.latency.summary))
            cpus.append(result.cpu); rss.append(Double(result.rssKB)); rates.append(Double(result.answered) / Double(loadSeconds))
            p99.append(result.latency.percentile(0.99))
        }
        say("   ml.codec \(codec), median of \(runs) runs:")
        say("     idle (baseline): CPU \(medianLine(idleCPU)) %, RSS \(medianLine(idleRSS, format: "%.0f")) kB")
        say("     under load:      CPU \(medianLine(cpus)) %, peak RSS \(medianLine(rss, format: "%.0f")) kB, \(medianLine(rates, format: "%.1f")) dialogs/s, end -> answer p99 \(medianLine(p99)) ms")
    }
}

// MARK: - opus

if sections.contains("opus") {
    say("\n== opus: libopus cost for 60 s of 16 kHz mono speech (3,000 frames of 20 ms), single thread")
    var encodeUs: [Double] = [], decodeUs: [Double] = [], copyUs: [Double] = []
    let long = Array((0..<50).map { _ in speech }.joined())
    for _ in 1...runs {
        let encoder = try OpusEncoder(sampleRate: 16000, channels: 1)
        let decoder = try OpusDecoder(sampleRate: 16000, channels: 1)
        var packets: [[UInt8]] = []
        let frames = stride(from: 0, to: long.count - 319, by: 320).map { Array(long[$0..<$0 + 320]) }
        let clock = ContinuousClock()
        let encodeTime = try clock.measure { for frame in frames { packets.append(try encoder.encode(frame)) } }
        var bytes = 0
        let decodeTime = try clock.measure { for packet in packets { bytes += try decoder.decode(packet).count } }
        // Baseline: what passing PCM through costs (turning each frame into bytes).
        let copyTime = clock.measure { for frame in frames { bytes += frame.withUnsafeBytes { Array($0) }.count } }
        let perFrame = { (time: Duration) in (Double(time.components.seconds) * 1e6 + Double(time.components.attoseconds) / 1e12) / Double(frames.count) }
        encodeUs.append(perFrame(encodeTime)); decodeUs.append(perFrame(decodeTime)); copyUs.append(perFrame(copyTime))
        precondition(bytes > 0)
    }
    say("   per 20 ms frame (us), median of \(runs) runs: encode \(medianLine(encodeUs)), decode \(medianLine(decodeUs)), PCM pass-through \(medianLine(copyUs))")
    let encodeShare = (encodeUs.sorted()[encodeUs.count / 2]) / 20_000 * 100
    let decodeShare = (decodeUs.sorted()[decodeUs.count / 2]) / 20_000 * 100
    say(String(format: "   per real-time stream: encode %.2f %% of one core, decode %.2f %% of one core", encodeShare, decodeShare))
}

// MARK: - balancing

if sections.contains("balancing") {
    say("\n== balancing: 3 ML endpoints, one answering AnalyzeIntent 300 ms late; \(sessionCount) devices for \(loadSeconds) s")
    for balancing in ["roundRobin", "leastOutstanding"] {
        var p50: [Double] = [], p99: [Double] = [], means: [Double] = [], slowShare: [Double] = []
        for run in 1...runs {
            let broker = try await startBroker("bal-broker-\(balancing)-\(run)")
            let servers = [FakeMLService(name: "fast-1"), FakeMLService(name: "fast-2"), FakeMLService(name: "slow")]
            for server in servers { server.script.withLock { $0.keepChunkBytes = false; $0.partialEvery = 25 } }
            servers[2].script.withLock { $0.intentDelay = .milliseconds(300) }
            var ports: [Int] = []
            for server in servers { ports.append(try await server.start()) }
            let gateway = try await startGateway("bal-gw-\(balancing)-\(run)", devicePort: broker.port, mlPorts: ports, extra: ["balancing: \(balancing)"])
            let devices = try await connectDevices(sessionCount, port: broker.port, prefix: "bal\(run)")
            let result = try await load(devices: devices, seconds: loadSeconds, gateway: gateway)
            for device in devices { await device.close() }
            processes.stop(gateway)
            processes.stop(broker.process, force: true)
            let intents = servers.map(\.intentCount)
            for server in servers { await server.stop() }
            let share = Double(intents[2]) / Double(max(1, intents.reduce(0, +))) * 100
            say(String(format: "   run %d (%@): %d answered, %d errors, end -> answer %@, intents on the slow endpoint %.0f %%",
                         run, balancing, result.answered, result.errors, result.latency.summary, share))
            p50.append(result.latency.percentile(0.5)); p99.append(result.latency.percentile(0.99)); slowShare.append(share)
            means.append(result.latency.mean)
        }
        say("   \(balancing), median of \(runs) runs: end -> answer mean \(medianLine(means)) ms, p50 \(medianLine(p50)) ms, p99 \(medianLine(p99)) ms; intents on the slow endpoint \(medianLine(slowShare, format: "%.0f")) %")
    }
}

// MARK: - wyoming

/// One gateway, one device, 20 sessions: last frame -> at the server, server answer -> device.
func wyomingLatency(run: Int, kind: String) async throws -> (last: Sample, answer: Sample) {
    let broker = try await startBroker("wy-lat-broker-\(kind)-\(run)")
    let grpc = FakeMLService(name: "wy-lat")
    let wyoming = WyomingBenchServer()
    let gateway: Process
    if kind == "wyoming" {
        gateway = try await startGateway("wy-lat-gw-\(kind)-\(run)", devicePort: broker.port, mlPorts: [], wyomingPorts: [try await wyoming.start()])
        // Ready once its first describe was answered (the endpoint offers nothing before).
        try await Task.sleep(for: .seconds(1))
    } else {
        gateway = try await startGateway("wy-lat-gw-\(kind)-\(run)", devicePort: broker.port, mlPorts: [try await grpc.start()])
    }
    let device = BenchDevice("wy-lat-\(kind)-\(run)", port: broker.port)
    try await device.connect()
    var last = Sample(), answer = Sample()
    for index in 0..<20 {
        let session = UUID()
        let published = try await device.speak(session: session, frames: opusFrames)
        let reply = try await device.waitForAnswer(session)
        guard reply.type == "DIALOG_RESPONSE" else {
            throw BenchError("session failed: \(reply.type)\n" + ((try? String(contentsOf: processes.directory.appendingPathComponent("wy-lat-gw-\(kind)-\(run)/log"), encoding: .utf8)) ?? ""))
        }
        let lastArrival: ContinuousClock.Instant?, answered: ContinuousClock.Instant?
        if kind == "wyoming" {
            let streams = wyoming.streams.withLock { $0 }
            let intents = wyoming.intents.withLock { $0 }
            guard streams.count == index + 1, intents.count == index + 1 else { throw BenchError("the Wyoming server saw \(streams.count) streams, \(intents.count) intents after \(index + 1) sessions") }
            lastArrival = streams.last?.arrivals.last
            answered = intents.last
        } else {
            let id = session.uuidString.lowercased()
            lastArrival = grpc.streams.withLock { $0.first { $0.config.sessionID == id } }?.arrivals.last
            answered = grpc.intents.withLock { $0.last { $0.request.context["sessionId"] == id } }?.answeredAt
        }
        guard let lastArrival, let answered, let lastSent = published.frames.last else { throw BenchError("the \(kind) server did not see session \(index)") }
        last.add(lastSent.duration(to: lastArrival))
        answer.add(answered.duration(to: reply.at))
    }
    await device.close()
    processes.stop(gateway)
    processes.stop(broker.process, force: true)
    await grpc.stop()
    await wyoming.stop()
    return (last, answer)
}

if sections.contains("wyoming") {
    say("\n== wyoming: one device, 20 sessions of 1.2 s (60 Opus frames) over gRPC and over Wyoming (the gateway decodes Opus to 16 kHz PCM)")
    var figures: [String: (last50: [Double], last99: [Double], answer50: [Double], answer99: [Double])] = [:]
    for run in 1...runs {
        for kind in ["grpc", "wyoming"] {
            let (last, answer) = try await wyomingLatency(run: run, kind: kind)
            say("   run \(run) (\(kind)): last frame -> server \(last.summary)")
            say("          server answer -> device \(answer.summary)")
            var entry = figures[kind] ?? ([], [], [], [])
            entry.last50.append(last.percentile(0.5)); entry.last99.append(last.percentile(0.99))
            entry.answer50.append(answer.percentile(0.5)); entry.answer99.append(answer.percentile(0.99))
            figures[kind] = entry
        }
    }
    say("   median of \(runs) runs (ms):")
    for kind in ["grpc", "wyoming"] {
        let entry = figures[kind]!
        say("     \(kind.padding(toLength: 8, withPad: " ", startingAt: 0)) last frame -> server p50 \(medianLine(entry.last50))  p99 \(medianLine(entry.last99))")
        say("              server answer -> device p50 \(medianLine(entry.answer50))  p99 \(medianLine(entry.answer99))")
    }

    say("\n== wyoming concurrency: \(sessionCount) devices speaking session after session for \(loadSeconds) s, over gRPC (baseline) and over Wyoming")
    for kind in ["grpc", "wyoming"] {
        var cpus: [Double] = [], rss: [Double] = [], idleRSS: [Double] = [], rates: [Double] = [], p99: [Double] = [], errors: [Double] = []
        for run in 1...runs {
            let broker = try await startBroker("wy-con-broker-\(kind)-\(run)")
            let grpc = FakeMLService(name: "wy-con")
            grpc.script.withLock { $0.keepChunkBytes = false; $0.partialEvery = 25 }
            let wyoming = WyomingBenchServer()
            let gateway = kind == "wyoming"
                ? try await startGateway("wy-con-gw-\(kind)-\(run)", devicePort: broker.port, mlPorts: [], wyomingPorts: [try await wyoming.start()])
                : try await startGateway("wy-con-gw-\(kind)-\(run)", devicePort: broker.port, mlPorts: [try await grpc.start()])
            let devices = try await connectDevices(sessionCount, port: broker.port, prefix: "wycon\(kind)\(run)")
            try await Task.sleep(for: .seconds(2))
            idleRSS.append(Double(ProcStat.rssKB(gateway.processIdentifier)))
            let result = try await load(devices: devices, seconds: loadSeconds, gateway: gateway)
            for device in devices { await device.close() }
            processes.stop(gateway)
            processes.stop(broker.process, force: true)
            await grpc.stop()
            await wyoming.stop()
            say(String(format: "   run %d (%@): %d answered, %d errors, gateway CPU %.1f %% of one core, peak RSS %d kB, end -> answer %@",
                         run, kind, result.answered, result.errors, result.cpu, result.rssKB, result.latency.summary))
            cpus.append(result.cpu); rss.append(Double(result.rssKB)); rates.append(Double(result.answered) / Double(loadSeconds))
            p99.append(result.latency.percentile(0.99)); errors.append(Double(result.errors))
        }
        say("   \(kind), median of \(runs) runs: CPU \(medianLine(cpus)) %, idle RSS \(medianLine(idleRSS, format: "%.0f")) kB, peak RSS \(medianLine(rss, format: "%.0f")) kB, \(medianLine(rates, format: "%.1f")) dialogs/s, errors \(medianLine(errors, format: "%.0f")), end -> answer p99 \(medianLine(p99)) ms")
    }
}
} catch {
    FileHandle.standardError.write(Data("voice-bench: \(error)\n".utf8))
    processes.stopAll()
    exit(1)
}
