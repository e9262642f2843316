import BrokerTestSupport
import Foundation

/// The usual arrangement for a scenario: a device broker, an upstream broker, recorders for device acks
/// (`device/+/ack`) and for upstream events (`hubs/#`), and the daemon between them.
///
/// ```swift
/// try await withSandbox { sandbox in
///     let bed = try await TestBed.start(in: sandbox)
///     try await bed.device("sensor-1").publish(DeviceEvent.series(deviceId: "sensor-1", count: 10))
///     try await bed.waitForUpstream(count: 10)
/// }
/// ```
final class TestBed {
    /// What the daemon's upstream side talks to.
    enum Upstream {
        /// A plain (no TLS, anonymous) broker.
        case broker
        /// A port on which nothing listens: nothing is ever delivered.
        case unreachable
        /// A broker with a TLS listener (test CA, certificate for 127.0.0.1) and a password file.
        case tlsBroker(user: String, password: String)
    }

    static let hubId = "hub-test"

    let sandbox: Sandbox
    let deviceBroker: MosquittoBroker
    let upstreamBroker: MosquittoBroker?
    let acks: TopicRecorder
    /// Nil when the upstream is unreachable.
    let upstream: TopicRecorder?
    let gateway: GatewayProcess
    /// Event ids of the sentinels `settle(through:)` sent: left out of `allAcks`, `acks(for:)`,
    /// `upstreamEvents` and the counts the `waitFor…` methods wait for.
    private var sentinelIds: Set<String> = []

    private init(
        sandbox: Sandbox, deviceBroker: MosquittoBroker, upstreamBroker: MosquittoBroker?,
        acks: TopicRecorder, upstream: TopicRecorder?, gateway: GatewayProcess
    ) {
        self.sandbox = sandbox
        self.deviceBroker = deviceBroker
        self.upstreamBroker = upstreamBroker
        self.acks = acks
        self.upstream = upstream
        self.gateway = gateway
    }

    deinit {
        // The daemon first, so its log ends with the test rather than with its brokers disappearing.
        gateway.kill()
    }

    /// Starts brokers and recorders; the daemon is configured but not started (see `start`).
    /// - Parameter deviceBrokerConfig: extra global lines for the device broker (a plugin, say).
    static func make(
        in sandbox: Sandbox, upstream kind: Upstream = .broker, overrides: GatewayConfig = [:], deviceBrokerConfig: [String] = []
    ) async throws -> TestBed {
        let deviceBroker = try MosquittoBroker("device", in: sandbox, extraConfig: deviceBrokerConfig)
        try await deviceBroker.start()
        let acks = TopicRecorder("acks", brokerPort: deviceBroker.port, filters: ["device/+/ack"], in: sandbox)
        try await acks.start()

        var upstreamBroker: MosquittoBroker?
        var upstream: TopicRecorder?
        var upstreamPort: Int
        var gatewayOverrides: GatewayConfig = [:]
        switch kind {
        case .broker:
            let broker = try MosquittoBroker("upstream", in: sandbox)
            try await broker.start()
            upstreamBroker = broker
            upstreamPort = broker.port
            upstream = TopicRecorder("upstream", brokerPort: broker.port, filters: ["hubs/#"], in: sandbox)
        case .unreachable:
            upstreamPort = try FreePort.next()
        case .tlsBroker(let user, let password):
            let tlsDirectory = try sandbox.makeDirectory("tls")
            let certificates = try await TestCertificates.make(in: tlsDirectory)
            let passwords = try await MosquittoPasswordFile.make(user: user, password: password, in: tlsDirectory)
            let broker = try MosquittoBroker(
                "upstream-tls", in: sandbox, allowAnonymous: false,
                listenerOptions: [
                    "cafile \(certificates.caFile.path)",
                    "certfile \(certificates.certFile.path)",
                    "keyfile \(certificates.keyFile.path)",
                ],
                extraConfig: ["password_file \(passwords.path)"]
            )
            try await broker.start()
            upstreamBroker = broker
            upstreamPort = broker.port
            upstream = TopicRecorder(
                "upstream", brokerPort: broker.port, filters: ["hubs/#"], in: sandbox,
                connectionOptions: ["--cafile", certificates.caFile.path, "-u", user, "-P", password]
            )
            gatewayOverrides = [
                "upstream.tls.caFile": .string(certificates.caFile.path),
                "upstream.username": .string(user),
                "upstream.password": .string(password),
            ]
        }
        try await upstream?.start()

        let gateway = try GatewayProcess(
            in: sandbox, devicePort: deviceBroker.port, upstreamPort: upstreamPort,
            overrides: gatewayOverrides.merging(overrides)
        )
        return TestBed(
            sandbox: sandbox, deviceBroker: deviceBroker, upstreamBroker: upstreamBroker,
            acks: acks, upstream: upstream, gateway: gateway
        )
    }

    /// `make`, then starts the daemon and waits until it is ready.
    static func start(
        in sandbox: Sandbox, upstream kind: Upstream = .broker, overrides: GatewayConfig = [:], deviceBrokerConfig: [String] = []
    ) async throws -> TestBed {
        let bed = try await make(in: sandbox, upstream: kind, overrides: overrides, deviceBrokerConfig: deviceBrokerConfig)
        try await bed.gateway.start()
        return bed
    }

    func device(_ id: String) -> DeviceClient {
        DeviceClient(id, brokerPort: deviceBroker.port, in: sandbox)
    }

    /// Publishes every device's events concurrently, each device over its own connection and in order.
    func publishConcurrently(_ eventsByDevice: [String: [DeviceEvent]], interval: Duration = .zero) async throws {
        try await DeviceClient.publishConcurrently(batches(eventsByDevice), interval: interval)
    }

    /// Clients paired with their events, for publishing from a separate task.
    func batches(_ eventsByDevice: [String: [DeviceEvent]]) -> [(DeviceClient, [DeviceEvent])] {
        eventsByDevice.sorted { $0.key < $1.key }.map { (device($0.key), $0.value) }
    }

    // MARK: - Waiting, with the daemon's log in the error

    func acks(for deviceId: String) -> [Ack] {
        allAcks.filter { $0.deviceId == deviceId }
    }

    var allAcks: [Ack] { acks.messages.map(Ack.init).filter { !isSentinel($0.eventId) } }

    var upstreamEvents: [UpstreamEvent] { (upstream?.messages ?? []).map(UpstreamEvent.init).filter { !isSentinel($0.eventId) } }

    private func isSentinel(_ eventId: String?) -> Bool {
        eventId.map { sentinelIds.contains($0) } ?? false
    }

    /// Waits for at least `count` acks (optionally only those matching `predicate`).
    @discardableResult
    func waitForAcks(count: Int, timeout: Duration = .seconds(30), where predicate: @escaping (Ack) -> Bool = { _ in true }) async throws -> [Ack] {
        try await withDiagnostics {
            try await acks.waitFor(count: count, timeout: timeout) { message in
                let ack = Ack(message)
                return !isSentinel(ack.eventId) && predicate(ack)
            }.map(Ack.init).filter { !isSentinel($0.eventId) }
        }
    }

    /// Waits until each of `eventIds` has been acked `stored` or `duplicate`.
    @discardableResult
    func waitForAcceptedAcks(eventIds: Set<String>, timeout: Duration = .seconds(30)) async throws -> [Ack] {
        try await withDiagnostics {
            do {
                return try await acks.waitUntil("acks for \(eventIds.count) event ids", timeout: timeout) { messages in
                    eventIds.isSubset(of: Self.acceptedIds(messages.map(Ack.init)))
                }.map(Ack.init).filter { !isSentinel($0.eventId) }
            } catch let error as HarnessError {
                let missing = eventIds.subtracting(Self.acceptedIds(allAcks)).sorted()
                throw HarnessError("\(error)\nnot acked stored/duplicate (\(missing.count)): \(missing.prefix(20))")
            }
        }
    }

    /// Event ids acked `stored` or `duplicate`.
    static func acceptedIds(_ acks: [Ack]) -> Set<String> {
        Set(acks.filter { $0.status == "stored" || $0.status == "duplicate" }.compactMap(\.eventId))
    }

    /// Waits until the upstream recorder has seen at least `count` events (optionally matching `predicate`).
    @discardableResult
    func waitForUpstream(count: Int, timeout: Duration = .seconds(30), where predicate: @escaping (UpstreamEvent) -> Bool = { _ in true }) async throws -> [UpstreamEvent] {
        guard let upstream else { throw HarnessError("this test bed has no upstream recorder") }
        return try await withDiagnostics {
            try await upstream.waitFor(count: count, timeout: timeout) { message in
                let event = UpstreamEvent(message)
                return !isSentinel(event.eventId) && predicate(event)
            }.map(UpstreamEvent.init).filter { !isSentinel($0.eventId) }
        }
    }

    /// Waits until every event id in `eventIds` has arrived upstream at least once.
    @discardableResult
    func waitForUpstream(eventIds: Set<String>, timeout: Duration = .seconds(30)) async throws -> [UpstreamEvent] {
        guard let upstream else { throw HarnessError("this test bed has no upstream recorder") }
        return try await withDiagnostics {
            do {
                return try await upstream.waitUntil("\(eventIds.count) distinct event ids", timeout: timeout) { messages in
                    eventIds.isSubset(of: Set(messages.compactMap { UpstreamEvent($0).eventId }))
                }.map(UpstreamEvent.init).filter { !isSentinel($0.eventId) }
            } catch let error as HarnessError {
                let seen = Set(upstreamEvents.compactMap(\.eventId))
                let missing = eventIds.subtracting(seen).sorted()
                throw HarnessError("\(error)\nmissing upstream (\(missing.count)): \(missing.prefix(20))")
            }
        }
    }

    // MARK: - Sentinels: "nothing else happened", observed instead of slept for

    /// Sends one sentinel event from each of `deviceIds` and waits until each is acked `stored` and
    /// (with an upstream recorder) has arrived upstream.
    ///
    /// The daemon handles device messages in the order the broker delivers them, acks after the
    /// commit, and forwards the outbox in sequence order over one connection (per-device order,
    /// CONTRACTS.md §2). So once a device's sentinel is back, whatever that device sent before it
    /// has been acked and forwarded, or never will be: a test asserts "nothing else happened"
    /// after this instead of after a sleep. Sentinels are left out of `allAcks`, `acks(for:)` and
    /// `upstreamEvents`.
    func settle(through deviceIds: String..., timeout: Duration = .seconds(30)) async throws {
        try await settle(through: deviceIds, timeout: timeout)
    }

    /// `settle(through:)` for a list of devices.
    func settle(through deviceIds: [String], timeout: Duration = .seconds(30)) async throws {
        for deviceId in deviceIds {
            let sentinel = DeviceEvent(deviceId: deviceId, seq: 1_000_000, eventId: "sentinel-\(UUID().uuidString.prefix(8))")
            sentinelIds.insert(sentinel.eventId)
            try await device(deviceId).publish([sentinel])
            try await withDiagnostics {
                let acked = try await acks.waitUntil("the sentinel's ack", timeout: timeout) { messages in
                    messages.contains { Ack($0).eventId == sentinel.eventId }
                }
                let ack = acked.map(Ack.init).first { $0.eventId == sentinel.eventId }
                guard ack?.isStored == true else { throw HarnessError("sentinel not acked stored: \(String(describing: ack))") }
                _ = try await upstream?.waitUntil("the sentinel upstream", timeout: timeout) { messages in
                    messages.contains { UpstreamEvent($0).eventId == sentinel.eventId }
                }
            }
        }
    }

    /// Runs `body`; a harness error (a timeout) gets the daemon's log tail appended.
    private func withDiagnostics<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as HarnessError {
            throw HarnessError("\(error)\n\(gateway.logTail())")
        }
    }

    /// The daemon's log tail, for failure messages.
    var diagnostics: String { gateway.logTail() }
}
