import BrokerTestSupport
import Foundation
import Logging
import Testing

@testable import MQTT

@Suite(.serialized, .timeLimit(.minutes(1))) struct MQTTClientTests {
    func configuration(port: Int, subscriptions: [String] = ["t/#"]) -> MQTTClientConfiguration {
        var configuration = MQTTClientConfiguration(
            host: "127.0.0.1", port: port, clientID: "mqtt-test-\(UUID().uuidString.prefix(8))", cleanSession: true)
        configuration.subscriptions = subscriptions
        configuration.reportsPublishAcks = true
        configuration.reconnectBaseMs = 50
        configuration.reconnectCapMs = 200
        configuration.connectTimeoutSeconds = 1
        return configuration
    }

    /// Takes events until one matches, failing after `timeout`.
    func next(
        _ iterator: inout AsyncStream<MQTTEvent>.Iterator, timeout: Duration = .seconds(20),
        where predicate: @escaping @Sendable (MQTTEvent) -> Bool
    ) async throws -> MQTTEvent {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let event = await iterator.next() else { throw HarnessError("event stream ended") }
            if predicate(event) { return event }
        }
        throw HarnessError("no matching event within \(timeout)")
    }

    @Test func receivesItsOwnPublishAndReportsThePuback() async throws {
        let broker = try MosquittoBroker()
        try await broker.start()
        let client = MQTTClient(configuration: configuration(port: broker.port), logger: Logger(label: "test"))
        client.start()
        var events = client.events.makeAsyncIterator()
        guard case .subscribed(let generation) = try await next(&events, where: { if case .subscribed = $0 { true } else { false } })
        else { return }
        let ticket = try client.publish(topic: "t/1", payload: Array("hello".utf8), onGeneration: generation)
        _ = try await next(&events, where: { if case .published(let tickets) = $0 { tickets.contains(ticket) } else { false } })
        var messages = client.messages.makeAsyncIterator()
        let batch = await messages.next()
        #expect(batch?.first?.topicString == "t/1")
        #expect(batch?.first?.payload == Array("hello".utf8))
        await client.stop()
    }

    @Test func afterABrokerRestartItReconnectsResubscribesAndRefusesTheOldGeneration() async throws {
        let broker = try MosquittoBroker()
        try await broker.start()
        let client = MQTTClient(configuration: configuration(port: broker.port), logger: Logger(label: "test"))
        client.start()
        var events = client.events.makeAsyncIterator()
        guard case .subscribed(let first) = try await next(&events, where: { if case .subscribed = $0 { true } else { false } })
        else { return }

        broker.kill()
        _ = try await next(&events, where: { if case .disconnected(first, _) = $0 { true } else { false } })
        try await broker.start()
        guard case .subscribed(let second) = try await next(&events, where: { if case .subscribed = $0 { true } else { false } })
        else { return }
        #expect(second > first)

        // A caller still on the first connection must not publish on the second.
        #expect(throws: MQTTError.self) {
            try client.publish(topic: "t/x", payload: [1], onGeneration: first)
        }
        #expect(throws: Never.self) {
            try client.publish(topic: "t/x", payload: [1], onGeneration: second)
        }
        await client.stop()
    }

    @Test func aServerThatNeverAnswersConnectCountsAsAFailedConnect() async throws {
        // A listening socket that accepts (in the kernel's backlog) and never speaks MQTT.
        let (fd, port) = try FreePort.boundSocket()
        defer { close(fd) }
        listen(fd, 16)

        let client = MQTTClient(configuration: configuration(port: port), logger: Logger(label: "test"))
        client.start()
        var events = client.events.makeAsyncIterator()
        let failed = try await next(&events, where: { if case .connectFailed = $0 { true } else { false } })
        guard case .connectFailed(let reason) = failed else { return }
        #expect(reason.contains("CONNACK"), "\(reason)")
        #expect(!client.isConnected)
        await client.stop()
    }

    /// A service stopped before its `run()` started the client (shutdown right after start-up): a
    /// later `start()` connects nowhere and ends the streams, so the service's loops end.
    @Test func aClientStoppedBeforeItStartsNeverConnectsAndItsStreamsEnd() async throws {
        let broker = try MosquittoBroker("stopped-first")
        let client = MQTTClient(configuration: configuration(port: broker.port), logger: Logger(label: "test"))
        await client.stop()
        client.start()
        for await _ in client.messages {}
        var events: [MQTTEvent] = []
        for await event in client.events { events.append(event) }
        #expect(events.isEmpty, "\(events)")
        #expect(!client.isConnected)
        await client.stop()
    }
}

/// An `MQTTClient` with several addresses against real brokers.
@Suite(.serialized, .timeLimit(.minutes(1))) struct MQTTClientFailoverTests {
    func configuration(ports: [Int]) -> MQTTClientConfiguration {
        var configuration = MQTTClientConfiguration(
            host: "127.0.0.1", port: ports[0], clientID: "mqtt-failover-\(UUID().uuidString.prefix(8))", cleanSession: true)
        configuration.addresses = ports.map { MQTTBrokerAddress(host: "127.0.0.1", port: $0) }
        configuration.subscriptions = ["t/#"]
        configuration.reconnectBaseMs = 50
        configuration.reconnectCapMs = 200
        configuration.connectTimeoutSeconds = 1
        return configuration
    }

    func next(
        _ iterator: inout AsyncStream<MQTTEvent>.Iterator, where predicate: @escaping @Sendable (MQTTEvent) -> Bool
    ) async throws -> MQTTEvent {
        while let event = await iterator.next() {
            if predicate(event) { return event }
        }
        throw HarnessError("event stream ended")
    }

    @Test func aRefusedAddressIsLeftForTheNextAndALostOneToo() async throws {
        let dead = try FreePort.next()  // nothing listens: connection refused
        let first = try MosquittoBroker("first")
        let second = try MosquittoBroker("second")
        try await first.start()
        try await second.start()
        let client = MQTTClient(configuration: configuration(ports: [dead, first.port, second.port]), logger: Logger(label: "test"))
        #expect(client.currentAddress.port == dead)
        client.start()
        var events = client.events.makeAsyncIterator()

        // The refused address, then the first broker.
        let moved = try await next(&events, where: { if case .addressChanged = $0 { true } else { false } })
        guard case .addressChanged(let refused, let following, let reason) = moved else { return }
        #expect(refused.port == dead && following.port == first.port)
        #expect(!reason.isEmpty)
        _ = try await next(&events, where: { if case .subscribed = $0 { true } else { false } })
        #expect(client.currentAddress.port == first.port)

        // The first broker dies: the next connection is to the second.
        first.kill()
        let lost = try await next(&events, where: { if case .addressChanged = $0 { true } else { false } })
        guard case .addressChanged(let from, let to, _) = lost else { return }
        #expect(from.port == first.port && to.port == second.port)
        _ = try await next(&events, where: { if case .subscribed = $0 { true } else { false } })
        #expect(client.currentAddress.port == second.port)
        #expect(client.isConnected)
        await client.stop()
    }
}
