import Registration
import Testing

/// The rate limits and the queue of registration requests: value types and a lock, time passed in.
@Suite struct RegistrationLimitsTests {
    let start = ContinuousClock.now

    @Test func aDeviceGetsItsPerMinuteAndThenWaitsForItsBucketToRefill() {
        var limit = RegistrationRateLimit(perDevicePerMinute: 3, perMinute: 100, at: start)
        #expect((0..<3).map { _ in limit.admit("dev-1", at: start) } == [.allowed, .allowed, .allowed])
        #expect(limit.admit("dev-1", at: start) == .device)
        #expect(limit.admit("dev-2", at: start) == .allowed, "another device has its own bucket")
        // One token a 20 seconds.
        #expect(limit.admit("dev-1", at: start + .seconds(19)) == .device)
        #expect(limit.admit("dev-1", at: start + .seconds(21)) == .allowed)
        #expect(limit.admit("dev-1", at: start + .seconds(22)) == .device)
    }

    @Test func theHubWideLimitHoldsAcrossDevices() {
        var limit = RegistrationRateLimit(perDevicePerMinute: 6, perMinute: 10, at: start)
        let verdicts = (0..<25).map { limit.admit("dev-\($0)", at: start) }
        #expect(verdicts.filter { $0 == .allowed }.count == 10)
        #expect(verdicts.suffix(15).allSatisfy { $0 == .hub })
        #expect(limit.admit("dev-99", at: start + .seconds(7)) == .allowed, "6 s refill one token")
    }

    @Test func aRefusedRequestTakesNoTokenFromTheOtherBucket() {
        var limit = RegistrationRateLimit(perDevicePerMinute: 2, perMinute: 3, at: start)
        #expect(limit.admit("flood", at: start) == .allowed)
        #expect(limit.admit("flood", at: start) == .allowed)
        for _ in 0..<100 { #expect(limit.admit("flood", at: start) == .device) }
        #expect(limit.admit("honest", at: start) == .allowed, "the flood's refusals did not use up the hub's tokens")
    }

    @Test func bucketsOfQuietDevicesAreDroppedSoMemoryStaysBounded() {
        var limit = RegistrationRateLimit(perDevicePerMinute: 6, perMinute: 1000, at: start)
        for index in 0..<500 { _ = limit.admit("dev-\(index)", at: start) }
        #expect(limit.trackedDevices == 500)
        _ = limit.admit("late", at: start + .seconds(61))
        #expect(limit.trackedDevices == 1)
        // Refused by the hub: no bucket is made.
        var tight = RegistrationRateLimit(perDevicePerMinute: 6, perMinute: 1, at: start)
        for index in 0..<500 { _ = tight.admit("dev-\(index)", at: start) }
        #expect(tight.trackedDevices == 1)
    }

    @Test func requestsForOneDeviceRunOneAtATimeAndOthersRunBesideThem() async {
        let queue = RegistrationQueue(maxConcurrent: 2, limit: 10)
        let x1 = queue.admit("x")!
        let x2 = queue.admit("x")!
        let y = queue.admit("y")!
        await x1.wait()
        await y.wait()
        #expect(queue.counts == (running: 2, waiting: 1), "the second request for x waits although a slot is free")
        let x2Started = Task {
            await x2.wait()
            return true
        }
        y.finish()
        #expect(queue.counts == (running: 1, waiting: 1))
        x1.finish()
        #expect(await x2Started.value)
        #expect(queue.counts == (running: 1, waiting: 0))
        x2.finish()
        #expect(queue.counts == (running: 0, waiting: 0))
    }

    @Test func atMostMaxConcurrentRunAndTheWaitingAreCapped() async {
        let queue = RegistrationQueue(maxConcurrent: 2, limit: 3)
        let admitted = (0..<5).compactMap { queue.admit("dev-\($0)") }
        #expect(admitted.count == 5)
        #expect(queue.counts == (running: 2, waiting: 3))
        #expect(queue.admit("dev-9") == nil, "over the limit: refused at once")
        admitted[0].finish()
        #expect(queue.counts == (running: 2, waiting: 2), "the oldest waiting one took the slot")
        #expect(queue.admit("dev-9") != nil)
        for admission in admitted.dropFirst() { admission.finish() }
    }
}
