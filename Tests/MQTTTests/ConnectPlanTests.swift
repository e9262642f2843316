import Testing

@testable import MQTT

/// The rotation over several broker addresses and the backoff streak that goes with it.
@Suite struct ConnectPlanTests {
    let addresses = [
        MQTTBrokerAddress(host: "10.0.0.1", port: 1883), MQTTBrokerAddress(host: "10.0.0.2", port: 1883),
        MQTTBrokerAddress(host: "10.0.0.3", port: 1883),
    ]
    let backoff = ReconnectBackoff(baseMilliseconds: 500, capMilliseconds: 30_000)

    func plan(startIndex: Int = 0, minConnected: Duration = .seconds(10)) -> ConnectPlan {
        ConnectPlan(addresses: addresses, startIndex: startIndex, backoff: backoff, minConnected: minConnected)
    }

    @Test func eachEndedAttemptMovesToTheNextAddressAndWraps() {
        var plan = plan()
        #expect(plan.current == addresses[0])
        var visited: [MQTTBrokerAddress] = []
        for _ in 0..<6 {
            let step = plan.ended(connectedFor: nil, unit: 0)
            #expect(step.changesAddress)
            #expect(step.to == plan.current)
            visited.append(step.to)
        }
        #expect(visited == [addresses[1], addresses[2], addresses[0], addresses[1], addresses[2], addresses[0]])
    }

    @Test func withOneAddressItStays() {
        var plan = ConnectPlan(addresses: [addresses[0]], backoff: backoff, minConnected: .seconds(10))
        let step = plan.ended(connectedFor: nil, unit: 1)
        #expect(!step.changesAddress)
        #expect(step.to == addresses[0])
    }

    @Test func failedConnectsGrowTheBackoffAcrossAddresses() {
        var plan = plan()
        // Full jitter at its top (unit 1): the ceilings of the streak, whichever address failed.
        let delays = (0..<6).map { _ in plan.ended(connectedFor: nil, unit: 1).delayMilliseconds }
        #expect(delays == [250, 250, 500, 1000, 2000, 4000])
    }

    @Test func aConnectionHeldMinConnectedStartsTheStreakOverSoTheNextNodeIsTriedQuickly() {
        var plan = plan()
        for _ in 0..<8 { _ = plan.ended(connectedFor: nil, unit: 1) }
        #expect(plan.attempt == 8)
        // The node served for a minute, then died: the next address within the quick attempts.
        let step = plan.ended(connectedFor: .seconds(60), unit: 1)
        #expect(step.delayMilliseconds == 250)
        #expect(step.changesAddress)
        #expect(plan.attempt == 1)
    }

    @Test func aLinkThatDropsBeforeMinConnectedCountsAsAFailure() {
        // A flapping node: it accepts, then drops after 2 s, again and again.
        var plan = plan(minConnected: .seconds(10))
        let delays = (0..<8).map { _ in plan.ended(connectedFor: .seconds(2), unit: 1).delayMilliseconds }
        #expect(delays == [250, 250, 500, 1000, 2000, 4000, 8000, 16_000])
        // Exactly the minimum resets.
        #expect(plan.ended(connectedFor: .seconds(10), unit: 1).delayMilliseconds == 250)
    }

    /// `upstream.quickRetries` 0: when a node that served for a while dies, the failover to the next
    /// node waits the full-jitter backoff (0 ... base), so a fleet's hubs spread over that interval
    /// instead of all retrying within 250 ms; a failure streak grows from the base.
    @Test func withoutQuickRetriesTheFailoverAfterAHeldLinkWaitsTheFullJitterBackoff() {
        let none = ReconnectBackoff(baseMilliseconds: 500, capMilliseconds: 30_000, quickAttempts: 0)
        var plan = ConnectPlan(addresses: addresses, backoff: none, minConnected: .seconds(10))
        let failover = plan.ended(connectedFor: .seconds(60), unit: 1)
        #expect(failover.delayMilliseconds == 500)
        #expect(failover.changesAddress)
        #expect(plan.ended(connectedFor: .seconds(60), unit: 0.5).delayMilliseconds == 250)
        let streak = (0..<4).map { _ in plan.ended(connectedFor: nil, unit: 1).delayMilliseconds }
        #expect(streak == [1000, 2000, 4000, 8000])
        // A flapping node (drops before minConnected) meets the same growing backoff.
        var flapping = ConnectPlan(addresses: addresses, backoff: none, minConnected: .seconds(10))
        #expect((0..<3).map { _ in flapping.ended(connectedFor: .seconds(2), unit: 1).delayMilliseconds } == [500, 1000, 2000])
    }

    @Test func minConnectedZeroResetsOnEveryConnack() {
        var plan = plan(minConnected: .zero)
        for _ in 0..<5 { _ = plan.ended(connectedFor: nil, unit: 1) }
        #expect(plan.ended(connectedFor: .zero, unit: 1).delayMilliseconds == 250)
    }

    @Test func orderedStartsAtTheFirstAddress() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            #expect(ConnectPlan.startIndex(count: 3, order: .ordered, using: &generator) == 0)
        }
        #expect(ConnectPlan.startIndex(count: 1, order: .random, using: &generator) == 0)
    }

    @Test func randomStartsSpreadOverEveryAddress() {
        // 200 draws over 3 addresses: each one missing has a probability of 3 * (2/3)^200, about 1e-35.
        var generator = SystemRandomNumberGenerator()
        var seen: [Int: Int] = [:]
        for _ in 0..<200 {
            let index = ConnectPlan.startIndex(count: 3, order: .random, using: &generator)
            #expect((0..<3).contains(index))
            seen[index, default: 0] += 1
        }
        #expect(seen.keys.sorted() == [0, 1, 2], "\(seen)")
        // And a random start rotates from there like an ordered one.
        var plan = plan(startIndex: 2)
        #expect(plan.current == addresses[2])
        #expect(plan.ended(connectedFor: nil, unit: 0).to == addresses[0])
    }

    @Test func theStartJitterStaysWithinItsBounds() {
        #expect(ConnectPlan.startDelayMilliseconds(jitterSeconds: 0, unit: 0.7) == 0)
        #expect(ConnectPlan.startDelayMilliseconds(jitterSeconds: 30, unit: 0) == 0)
        #expect(ConnectPlan.startDelayMilliseconds(jitterSeconds: 30, unit: 1) == 30_000)
        #expect(ConnectPlan.startDelayMilliseconds(jitterSeconds: 30, unit: 0.5) == 15_000)
        for _ in 0..<100 {
            let delay = ConnectPlan.startDelayMilliseconds(jitterSeconds: 5, unit: Double.random(in: 0...1))
            #expect(delay >= 0 && delay <= 5000)
        }
    }
}

@Suite struct MQTTBrokerAddressTests {
    func parse(_ text: String) -> MQTTBrokerAddress? {
        try? MQTTBrokerAddress.parse(text, defaultPort: 1883).get()
    }

    @Test func parsesHostPortNamesAndIPv6InBrackets() {
        #expect(parse("127.0.0.1:4222") == MQTTBrokerAddress(host: "127.0.0.1", port: 4222))
        #expect(parse("broker-2.example.com") == MQTTBrokerAddress(host: "broker-2.example.com", port: 1883))
        #expect(parse("[::1]:8883") == MQTTBrokerAddress(host: "::1", port: 8883))
        #expect(parse("[fd00::2]") == MQTTBrokerAddress(host: "fd00::2", port: 1883))
        #expect(parse(" node-1:1884 ") == MQTTBrokerAddress(host: "node-1", port: 1884))
        #expect(MQTTBrokerAddress(host: "::1", port: 8883).description == "[::1]:8883")
        #expect(MQTTBrokerAddress(host: "a", port: 1).description == "a:1")
    }

    @Test func refusesWhatIsNoAddress() {
        for bad in ["", ":1883", "host:", "host:0", "host:65536", "host:x", "::1", "::1:1883", "[::1", "[::1]x", "[]:1", "[zz]:1", "a b:1", "h/x:1"] {
            #expect(parse(bad) == nil, "\(bad)")
        }
    }
}
