import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    /// The daemon against a clustered cloud broker: a real 3-node NATS cluster (JetStream, MQTT with
    /// `stream_replicas: 3`) listed in `upstream.hosts`. A node dies under traffic, comes back, or the
    /// whole cluster is down for a while: every acknowledged event reaches a persistent subscriber, in
    /// per-device order of first arrival, with the eventIds the devices gave.
    @Suite struct UpstreamClusterTests {
        /// Device broker, acks recorder, the NATS cluster, a persistent QoS 1 subscriber on the third
        /// node, and the daemon with all three nodes in `upstream.hosts` (ordered: it starts at n1).
        final class ClusterBed {
            static let hubId = "hub-test"
            let sandbox: Sandbox
            let deviceBroker: MosquittoBroker
            let acks: TopicRecorder
            let cluster: NATSCluster
            let subscriber: TopicRecorder
            let gateway: GatewayProcess
            let admin: AdminClient

            /// - Parameter environment: added to the daemon's (systemd's NOTIFY_SOCKET, say).
            init(in sandbox: Sandbox, environment: [String: String] = [:]) async throws {
                self.sandbox = sandbox
                deviceBroker = try MosquittoBroker("device", in: sandbox)
                try await deviceBroker.start()
                acks = TopicRecorder("acks", brokerPort: deviceBroker.port, filters: ["device/+/ack"], in: sandbox)
                try await acks.start()
                cluster = try NATSCluster(in: sandbox)
                try await cluster.start()
                subscriber = TopicRecorder(
                    "cloud", brokerPort: cluster.nodes[2].mqttPort, filters: ["hubs/\(Self.hubId)/events/+"], in: sandbox,
                    clientId: "cloud-consumer")
                try await subscriber.start(timeout: .seconds(60))
                let adminPort = try FreePort.next()
                let hosts = cluster.mqttPorts.map { "\"127.0.0.1:\($0)\"" }.joined(separator: ", ")
                gateway = try GatewayProcess(
                    in: sandbox, devicePort: deviceBroker.port, upstreamPort: cluster.mqttPorts[0],
                    overrides: [
                        "admin.port": .int(adminPort),
                        "upstream.hosts": .raw("[\(hosts)]"),
                        // A node that served a second counts as good: the next one is tried at once.
                        "upstream.minConnectedSeconds": 1,
                    ])
                admin = AdminClient(port: adminPort)
                gateway.extraEnvironment = environment
                try await gateway.start()
            }

            deinit {
                gateway.kill()
                cluster.shutdown()
            }

            func address(_ node: Int) -> String { "127.0.0.1:\(cluster.nodes[node].mqttPort)" }

            /// `links.upstream` of `/api/status`.
            func upstreamLink() async throws -> [String: Any] {
                let status = try await admin.get("/api/status")
                let links = (status.json as? [String: Any])?["links"] as? [String: Any]
                return links?["upstream"] as? [String: Any] ?? [:]
            }

            /// Waits until the daemon is connected upstream at one of `nodes`; returns the node.
            @discardableResult
            func waitUntilConnected(toOneOf nodes: [Int], timeout: Duration = .seconds(60)) async throws -> Int {
                let deadline = ContinuousClock.now + timeout
                var last: [String: Any] = [:]
                while ContinuousClock.now < deadline {
                    last = try await upstreamLink()
                    if last["state"] as? String == "connected", let address = last["address"] as? String,
                        let node = nodes.first(where: { self.address($0) == address })
                    {
                        return node
                    }
                    try await Task.sleep(for: .milliseconds(100))
                }
                throw HarnessError.timeout(
                    "the daemon connected upstream to one of \(nodes.map(address))", details: "\(last)\n\(gateway.logTail())\n\(cluster.diagnostics)")
            }

            /// Events of `count` per device, from `from`.
            static func events(_ devices: [String], count: Int, from: Int = 0) -> [String: [DeviceEvent]] {
                Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: count, from: from)) })
            }

            /// Each device's events with its client, to publish from a task of their own.
            func batches(_ events: [String: [DeviceEvent]]) -> [(DeviceClient, [DeviceEvent])] {
                events.sorted { $0.key < $1.key }.map { (DeviceClient($0.key, brokerPort: deviceBroker.port, in: sandbox), $0.value) }
            }

            func publish(_ events: [String: [DeviceEvent]]) async throws {
                try await DeviceClient.publishConcurrently(batches(events))
            }

            /// Waits until every sent event is acked `stored` and has arrived at the subscriber; checks
            /// the order of first arrivals and that repeats are identical. Returns what arrived.
            @discardableResult
            /// - Parameter orderChecked: false where NATS itself may break the order (below): the
            ///   order problems are printed instead.
            func expectDelivered(
                _ sent: [String: [DeviceEvent]], timeout: Duration = .seconds(90), orderChecked: Bool = true
            ) async throws -> [UpstreamEvent] {
                let ids = Set(sent.values.joined().map(\.eventId))
                let acked = try await acks.waitUntil("acks for \(ids.count) events", timeout: .seconds(60)) { messages in
                    ids.isSubset(of: Set(messages.map(Ack.init).filter { $0.status == "stored" }.compactMap(\.eventId)))
                }
                #expect(DeliveryCheck.ackProblems(acked.map(Ack.init), expectedStatus: "stored").isEmpty)
                do {
                    try await subscriber.waitUntil("\(ids.count) distinct event ids", timeout: timeout) { messages in
                        ids.isSubset(of: Set(messages.compactMap { UpstreamEvent($0).eventId }))
                    }
                } catch {
                    let seen = Set(subscriber.messages.compactMap { UpstreamEvent($0).eventId })
                    throw HarnessError(
                        "\(error)\nmissing (\(ids.subtracting(seen).count)): \(ids.subtracting(seen).sorted().prefix(10))\n\(gateway.logTail())\n\(cluster.diagnostics)")
                }
                let upstream = subscriber.messages.map(UpstreamEvent.init)
                if orderChecked {
                    DeliveryCheck.expectOrderedDelivery(upstream, sent: sent)
                } else {
                    #expect(DeliveryCheck.repeatProblems(upstream).isEmpty, "\(DeliveryCheck.repeatProblems(upstream).prefix(5))")
                    let problems = DeliveryCheck.orderProblems(upstream, sent: sent)
                    if !problems.isEmpty { print("UpstreamClusterTests: first arrivals out of order (NATS): \(problems.prefix(5))") }
                }
                for event in upstream.prefix(20) {
                    #expect(event.hubId == Self.hubId)
                }
                return upstream
            }
        }

        @Test func killingTheNodeInUseMovesTheDaemonToAnotherAndEveryAckedEventArrives() async throws {
            try await withSandbox { sandbox in
                let notify = try NotifySocket()
                defer { notify.close() }
                let bed = try await ClusterBed(in: sandbox, environment: ["NOTIFY_SOCKET": notify.path])
                // Ordered: the first address.
                try await bed.waitUntilConnected(toOneOf: [0])
                #expect(try await bed.admin.waitForMetric(#"gateway_upstream_address_info{address="\#(bed.address(0))"}"#) { $0 == 1 } == 1)

                // Several devices, a few hundred events, spread over a few seconds.
                let devices = (1...4).map { "dev-\($0)" }
                let sent = ClusterBed.events(devices, count: 100)
                let batches = bed.batches(sent)
                let traffic = Task { try await DeviceClient.publishConcurrently(batches, interval: .milliseconds(15)) }
                _ = try await bed.subscriber.waitFor(count: 40, timeout: .seconds(60))

                // SIGKILL the node in use, during the traffic.
                bed.cluster.kill(0)
                try await bed.waitUntilConnected(toOneOf: [1, 2])
                try await bed.gateway.waitForLog("upstream failover from \(bed.address(0)) to ")
                #expect(try await bed.admin.waitForMetric("gateway_upstream_failovers_total") { $0 >= 1 } >= 1)
                // The link may move on again while the cluster elects new leaders: the checks below
                // accept either surviving node, and never the dead one.
                let survivors = [1, 2].map(bed.address)
                try await Poll.until("address_info: 0 for the dead node, 1 for one survivor", timeout: .seconds(30), every: .milliseconds(100)) {
                    let metrics = try await bed.admin.get("/metrics").text
                    let info = { (address: String) in AdminClient.value(of: #"gateway_upstream_address_info{address="\#(address)"}"#, in: metrics) }
                    return info(bed.address(0)) == 0 && survivors.compactMap(info).reduce(0, +) == 1
                }
                let link = try await bed.upstreamLink()
                #expect((link["failovers"] as? Int ?? 0) >= 1, "\(link)")
                #expect((link["addresses"] as? [String]) == [0, 1, 2].map(bed.address), "\(link)")
                // systemctl status shows the address in use (STATUS= every 10 s).
                try await notify.waitFor("STATUS= naming a surviving node") { line in
                    line.hasPrefix("STATUS=") && survivors.contains { line.contains("upstream up at \($0) (") }
                }

                try await traffic.value
                // Nothing lost, repeats identical; the order of first arrivals is printed, not
                // asserted: while JetStream elects new stream leaders after the kill, NATS 2.9 has
                // acknowledged later QoS 1 messages of the connection before an earlier one (seen:
                // dev-3's event 14 arrived after 99, when the daemon sent it again on the next node).
                // README, "Running a fleet".
                let upstream = try await bed.expectDelivered(sent, orderChecked: false)

                // Commands use the same link: the subscription was made again on the new node, and
                // the hub's answer comes back through the outbox.
                // NATS may still close a new client's connection, or deny its subscription ("All
                // subscription requests were denied": JetStream has no leader for the sessions' stream
                // yet), while it settles after the kill: the recorder is started again, a second
                // apart, for up to a minute.
                var answers: [RecordedMessage] = []
                let settleDeadline = ContinuousClock.now + .seconds(60)
                for attempt in 1... {
                    let last = ContinuousClock.now >= settleDeadline
                    let statuses = TopicRecorder(
                        "statuses-\(attempt)", brokerPort: bed.cluster.nodes[2].mqttPort,
                        filters: ["hubs/\(ClusterBed.hubId)/commands/+/status"], in: sandbox)
                    do {
                        try await statuses.start(timeout: .seconds(60))
                        try await DeviceClient.publishOnce(
                            topic: "hubs/\(ClusterBed.hubId)/commands/dev-1",
                            payload: Data(#"{"commandId": "after-failover", "name": "blink"}"#.utf8),
                            brokerPort: bed.cluster.nodes[2].mqttPort, in: sandbox.directory)
                        answers = try await statuses.waitUntil("a status for the command") { messages in
                            messages.contains { JSON.string(JSON.object($0.payload)?["commandId"]) == "after-failover" }
                        }
                        break
                    } catch where !last {
                        print("UpstreamClusterTests: status recorder attempt \(attempt): \(error)")
                        try await Task.sleep(for: .seconds(1))
                    }
                }
                #expect(answers.contains { JSON.string(JSON.object($0.payload)?["status"]) == "queued" }, "\(answers)")

                let repeats = DeliveryCheck.duplicates(upstream)
                print("UpstreamClusterTests: \(upstream.count) messages for 400 events, \(repeats.count) sent more than once (at least once)")
            }
        }

        @Test func aKilledNodeThatReturnsLosesNothingAndRepeatsOnlyAsAtLeastOnceAllows() async throws {
            try await withSandbox { sandbox in
                let bed = try await ClusterBed(in: sandbox)
                try await bed.waitUntilConnected(toOneOf: [0])
                let devices = (1...3).map { "dev-\($0)" }
                let first = ClusterBed.events(devices, count: 60)
                let firstBatches = bed.batches(first)
                let traffic = Task { try await DeviceClient.publishConcurrently(firstBatches, interval: .milliseconds(10)) }
                _ = try await bed.subscriber.waitFor(count: 20, timeout: .seconds(60))
                bed.cluster.kill(0)
                try await bed.waitUntilConnected(toOneOf: [1, 2])
                try await traffic.value

                // n1 returns (same store): it catches up; then the node in use now dies as well.
                try await bed.cluster.restart(0)
                let second = ClusterBed.events(devices, count: 60, from: 60)
                let secondBatches = bed.batches(second)
                let more = Task { try await DeviceClient.publishConcurrently(secondBatches, interval: .milliseconds(10)) }
                let inUse = try await bed.waitUntilConnected(toOneOf: [1, 2])
                _ = try await bed.subscriber.waitFor(count: 200, timeout: .seconds(60))
                if inUse == 1 {
                    bed.cluster.kill(1)
                    try await bed.waitUntilConnected(toOneOf: [0, 2])
                }
                try await more.value

                let sent = first.merging(second) { $0 + $1 }
                // Nothing lost, repeats identical; the order of first arrivals is not asserted here. A
                // node killed right after another returned leaves JetStream electing stream leaders:
                // NATS 2.9 then acknowledged later QoS 1 messages of the connection while an earlier
                // one was never stored (seen once: dev-1's event 10 arrived after 119, when the daemon
                // sent it again). An MQTT 3.1.1 broker acks in order; the daemon cannot undo what the
                // broker already delivered (README, "Running a fleet").
                let upstream = try await bed.expectDelivered(sent, orderChecked: false)
                // At least once: a repeat is the same event again (checked above); count them.
                let repeats = DeliveryCheck.duplicates(upstream)
                print("UpstreamClusterTests: \(upstream.count) messages for 360 events, \(repeats.count) sent more than once")
                #expect(Set(upstream.compactMap(\.eventId)).count == 360)
            }
        }

        @Test func withEveryNodeDownEventsAreKeptAndDeliveredWhenTheClusterReturns() async throws {
            try await withSandbox { sandbox in
                let bed = try await ClusterBed(in: sandbox)
                try await bed.waitUntilConnected(toOneOf: [0])
                let devices = (1...3).map { "dev-\($0)" }
                let before = ClusterBed.events(devices, count: 10)
                try await bed.publish(before)
                try await bed.expectDelivered(before)

                // The whole cluster goes; the subscriber's session stays in JetStream.
                bed.subscriber.stop()
                for node in 0..<3 { bed.cluster.kill(node) }
                let during = ClusterBed.events(devices, count: 40, from: 10)
                try await bed.publish(during)
                _ = try await bed.acks.waitFor(count: 150, timeout: .seconds(60))
                let stats = try await bed.gateway.outboxStats(waitingUntil: { (JSON.int($0["depth"]) ?? 0) >= 120 })
                #expect((JSON.int(stats["depth"]) ?? 0) >= 120, "outbox while the cluster is down: \(JSON.line(stats))")
                let link = try await bed.upstreamLink()
                #expect(link["state"] as? String == "down", "\(link)")

                // It returns (a JetStream cluster of 3 serves MQTT again with a quorum of 2).
                try bed.cluster.launchAgain([0, 1, 2])
                try await bed.cluster.waitUntilReady([0, 1, 2])
                // While JetStream elects its leaders again NATS may close the consumer's connection
                // ("The connection was lost.", seen under load): the consumer (same client id, so the
                // same session and what it kept) is started again, a second apart, for up to 90 s.
                let settleDeadline = ContinuousClock.now + .seconds(90)
                for attempt in 1... {
                    do {
                        try await bed.subscriber.start(timeout: .seconds(30))
                        break
                    } catch where ContinuousClock.now < settleDeadline {
                        print("UpstreamClusterTests: consumer start \(attempt) after the outage: \(error)")
                        bed.subscriber.stop()
                        try await Task.sleep(for: .seconds(1))
                    }
                }
                try await bed.waitUntilConnected(toOneOf: [0, 1, 2], timeout: .seconds(90))
                try await bed.expectDelivered(before.merging(during) { $0 + $1 })
                let drained = try await bed.gateway.outboxStats(waitingUntil: { JSON.int($0["depth"]) == 0 }, timeout: .seconds(30))
                #expect(JSON.int(drained["depth"]) == 0, "\(JSON.line(drained))")
            }
        }
    }
}
