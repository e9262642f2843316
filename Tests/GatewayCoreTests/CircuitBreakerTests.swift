import GatewayCore
import Testing

@Suite struct CircuitBreakerTests {
    let start = ContinuousClock.now
    func at(_ seconds: Double) -> ContinuousClock.Instant { start + .milliseconds(Int(seconds * 1000)) }

    var configuration: CircuitBreaker.Configuration {
        var configuration = CircuitBreaker.Configuration()
        configuration.failureRatio = 0.5
        configuration.minimumCalls = 4
        configuration.openDuration = .seconds(10)
        configuration.window = .seconds(30)
        return configuration
    }

    @Test func opensOnlyOnceEnoughCallsFailedInTheWindow() {
        var breaker = CircuitBreaker(configuration: configuration)
        // Three failures are below minimumCalls: still closed.
        for second in 0..<3 {
            let changed = breaker.record(failed: true, at: at(Double(second)))
            #expect(changed == nil)
        }
        #expect(breaker.state == .closed)
        // The fourth call makes 4 calls, 4 failures: open.
        let step1 = breaker.record(failed: true, at: at(3))
        #expect(step1 == .open)
        let step2 = breaker.allowsCall(at: at(4))
        #expect(!step2)
    }

    @Test func successesKeepTheRatioBelowTheThreshold() {
        var breaker = CircuitBreaker(configuration: configuration)
        for second in 0..<20 { breaker.record(failed: second % 3 == 1, at: at(Double(second))) }
        #expect(breaker.state == .closed, "a third of the calls failing is below 0.5")
    }

    @Test func oldOutcomesLeaveTheWindow() {
        var breaker = CircuitBreaker(configuration: configuration)
        for second in 0..<3 { breaker.record(failed: true, at: at(Double(second))) }
        // 40 s later the three failures are out of the 30 s window: one more is not enough.
        let step3 = breaker.record(failed: true, at: at(40))
        #expect(step3 == nil)
        #expect(breaker.state == .closed)
    }

    @Test func afterTheCoolDownOneProbeDecides() {
        var breaker = CircuitBreaker(configuration: configuration)
        for second in 0..<4 { breaker.record(failed: true, at: at(Double(second))) }
        #expect(breaker.state == .open)
        let step4 = breaker.allowsCall(at: at(12))
        #expect(!step4, "still cooling down")
        let step5 = breaker.allowsCall(at: at(14))
        #expect(step5, "the probe")
        #expect(breaker.state == .halfOpen)
        let step6 = breaker.allowsCall(at: at(14))
        #expect(!step6, "one probe at a time")
        // The probe fails: open for another 10 s.
        let step7 = breaker.record(failed: true, at: at(15))
        #expect(step7 == .open)
        let step8 = breaker.allowsCall(at: at(20))
        #expect(!step8)
        let step9 = breaker.allowsCall(at: at(26))
        #expect(step9)
        // This probe succeeds: closed, with a fresh window.
        let step10 = breaker.record(failed: false, at: at(26))
        #expect(step10 == .closed)
        let step11 = breaker.allowsCall(at: at(27))
        #expect(step11)
        let step12 = breaker.record(failed: true, at: at(27))
        #expect(step12 == nil)
    }
}
