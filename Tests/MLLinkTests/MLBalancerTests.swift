import GatewayCore
import Testing

@testable import MLLink

/// The balancer alone: endpoint states as plain values, time passed in, no server and no clock.
@Suite struct MLBalancerTests {
    struct Entry: MLBalancerEntry {
        var breaker: CircuitBreaker
        var outstanding = 0
        var healthDown = false
    }

    let a = MLEndpoint(host: "127.0.0.1", port: 1)
    let b = MLEndpoint(host: "127.0.0.1", port: 2)
    let c = MLEndpoint(host: "127.0.0.1", port: 3)
    let t0 = ContinuousClock.now

    /// One failure in the window opens a breaker; it stays open for 10 s.
    var breakerConfiguration: CircuitBreaker.Configuration {
        var configuration = CircuitBreaker.Configuration()
        configuration.minimumCalls = 1
        configuration.failureRatio = 0.5
        configuration.openDuration = .seconds(10)
        return configuration
    }

    func balancer(_ endpoints: [MLEndpoint]) -> (MLBalancer, [MLEndpoint: Entry]) {
        var balancer = MLBalancer()
        var entries: [MLEndpoint: Entry] = [:]
        for endpoint in endpoints {
            balancer.add(endpoint)
            entries[endpoint] = Entry(breaker: CircuitBreaker(configuration: breakerConfiguration))
        }
        return (balancer, entries)
    }

    /// Opens `endpoint`'s breaker at `t0` with one failed call.
    func open(_ endpoint: MLEndpoint, in entries: inout [MLEndpoint: Entry]) {
        let allowed = entries[endpoint]!.breaker.allowsCall(at: t0)
        let change = entries[endpoint]!.breaker.record(failed: true, at: t0)
        #expect(allowed)
        #expect(change == .open)
    }

    @Test func roundRobinTakesTheEndpointsInTurn() {
        var (balancer, entries) = balancer([a, b, c])
        var picked: [MLEndpoint] = []
        for _ in 0..<6 {
            let pick = balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0)
            picked.append(pick!.endpoint)
            #expect(balancer.finish(pick!.endpoint, in: &entries, failed: false, at: t0) == nil)
        }
        #expect(picked == [a, b, c, a, b, c])
        #expect(entries.values.allSatisfy { $0.outstanding == 0 })
    }

    @Test func roundRobinDoesNotWaitForCallsToFinish() {
        var (balancer, entries) = balancer([a, b])
        let first = balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0)
        let second = balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0)
        let third = balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0)
        #expect([first?.endpoint, second?.endpoint, third?.endpoint] == [a, b, a])
        #expect(entries[a]!.outstanding == 2)
        #expect(entries[b]!.outstanding == 1)
    }

    @Test func leastOutstandingPicksTheEndpointWithTheFewestCallsUnderWay() {
        var (balancer, entries) = balancer([a, b, c])
        entries[a]!.outstanding = 2
        entries[b]!.outstanding = 1
        entries[c]!.outstanding = 0
        let pick = balancer.pick(excluding: [], from: &entries, balancing: .leastOutstanding, at: t0)
        #expect(pick?.endpoint == c)
        #expect(entries[c]!.outstanding == 1)
    }

    @Test func leastOutstandingBreaksTiesInTurnOrder() {
        var (balancer, entries) = balancer([a, b, c])
        var picked: [MLEndpoint] = []
        for _ in 0..<3 {
            let pick = balancer.pick(excluding: [], from: &entries, balancing: .leastOutstanding, at: t0)
            picked.append(pick!.endpoint)
            _ = balancer.finish(pick!.endpoint, in: &entries, failed: false, at: t0)
        }
        #expect(picked == [a, b, c])
    }

    @Test(arguments: [MLConfiguration.Balancing.roundRobin, .leastOutstanding])
    func anEndpointWhoseBreakerIsOpenIsSkipped(balancing: MLConfiguration.Balancing) {
        var (balancer, entries) = balancer([a, b, c])
        open(b, in: &entries)
        var picked: [MLEndpoint] = []
        for _ in 0..<4 {
            let pick = balancer.pick(excluding: [], from: &entries, balancing: balancing, at: t0 + .seconds(1))
            picked.append(pick!.endpoint)
            _ = balancer.finish(pick!.endpoint, in: &entries, failed: false, at: t0 + .seconds(1))
        }
        #expect(!picked.contains(b))
        #expect(picked == [a, c, a, c])
    }

    @Test func noEndpointWhenEveryBreakerIsOpen() {
        var (balancer, entries) = balancer([a, b])
        open(a, in: &entries)
        open(b, in: &entries)
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0 + .seconds(9)) == nil)
        #expect(entries.values.allSatisfy { $0.outstanding == 0 })
    }

    @Test func noEndpointWhenNoneIsKnown() {
        var balancer = MLBalancer()
        var entries: [MLEndpoint: Entry] = [:]
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .leastOutstanding, at: t0) == nil)
    }

    @Test func anOpenBreakerLetsOneProbeThroughOnceItsOpenTimeHasPassed() {
        var (balancer, entries) = balancer([a])
        open(a, in: &entries)
        let probeTime = t0 + .seconds(10)
        let probe = balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: probeTime)
        #expect(probe?.endpoint == a)
        #expect(probe?.change == .halfOpen, "the pick that lets the probe through reports the change")
        // Only one probe at a time.
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: probeTime) == nil)
        #expect(balancer.finish(a, in: &entries, failed: false, at: probeTime) == .closed)
        let after = balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: probeTime)
        #expect(after?.endpoint == a)
        #expect(after?.change == nil)
    }

    @Test func aFailedProbeOpensTheBreakerAgain() {
        var (balancer, entries) = balancer([a, b])
        open(a, in: &entries)
        open(b, in: &entries)
        let probeTime = t0 + .seconds(10)
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: probeTime)?.endpoint == a)
        #expect(balancer.finish(a, in: &entries, failed: true, at: probeTime) == .open)
        // b's probe is still free; a is open for another 10 s.
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: probeTime)?.endpoint == b)
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: probeTime + .seconds(9)) == nil)
    }

    @Test func anEndpointReportedDownIsUsedOnlyWhenNoOtherIsUp() {
        var (balancer, entries) = balancer([a, b])
        entries[a]!.healthDown = true
        for _ in 0..<2 {
            let pick = balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0)
            #expect(pick?.endpoint == b)
            _ = balancer.finish(b, in: &entries, failed: false, at: t0)
        }
    }

    @Test func anEndpointReportedDownIsUsedWhenEveryOtherBreakerIsOpen() {
        var (balancer, entries) = balancer([a, b])
        entries[a]!.healthDown = true
        open(b, in: &entries)
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0)?.endpoint == a)
    }

    @Test func endpointsAlreadyTriedAreLeftOut() {
        var (balancer, entries) = balancer([a, b])
        let pick = balancer.pick(excluding: [a], from: &entries, balancing: .leastOutstanding, at: t0)
        #expect(pick?.endpoint == b)
        #expect(balancer.pick(excluding: [a, b], from: &entries, balancing: .leastOutstanding, at: t0) == nil)
    }

    @Test func aRemovedEndpointIsNoLongerPicked() {
        var (balancer, entries) = balancer([a, b])
        balancer.remove { $0 == a }
        entries[a] = nil
        #expect(balancer.order == [b])
        #expect(balancer.pick(excluding: [], from: &entries, balancing: .roundRobin, at: t0)?.endpoint == b)
        #expect(balancer.finish(a, in: &entries, failed: true, at: t0) == nil, "a call ending on a removed endpoint records nothing")
    }
}

/// Discovery's comparison of resolved addresses with the endpoints known from a name.
@Suite struct MLDiscoveryTests {
    @Test func newAddressesJoinAndGoneOnesLeave() {
        let known: Set = [MLEndpoint(host: "10.0.0.1", port: 50051), MLEndpoint(host: "10.0.0.2", port: 50051)]
        let changes = MLDiscovery.changes(addresses: ["10.0.0.3", "10.0.0.2", "::1"], port: 50051, known: known)
        #expect(changes.added == [MLEndpoint(host: "10.0.0.3", port: 50051), MLEndpoint(host: "::1", port: 50051)])
        #expect(changes.removed == [MLEndpoint(host: "10.0.0.1", port: 50051)])
    }

    @Test func theSameAddressesChangeNothing() {
        let known: Set = [MLEndpoint(host: "127.0.0.1", port: 50051)]
        let changes = MLDiscovery.changes(addresses: ["127.0.0.1"], port: 50051, known: known)
        #expect(changes == MLDiscovery.Changes(added: [], removed: []))
    }
}
