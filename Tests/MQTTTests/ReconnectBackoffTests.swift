import MQTT
import Testing

@Suite struct ReconnectBackoffTests {
    let backoff = ReconnectBackoff(baseMilliseconds: 500, capMilliseconds: 30_000)

    @Test func ceilingDoublesPerAttemptUpToTheCap() {
        #expect(backoff.ceiling(attempt: 0) == 500)
        #expect(backoff.ceiling(attempt: 1) == 1000)
        #expect(backoff.ceiling(attempt: 5) == 16_000)
        #expect(backoff.ceiling(attempt: 6) == 30_000)
        #expect(backoff.ceiling(attempt: 1000) == 30_000)
    }

    @Test func fullJitterSpansZeroToTheCeiling() {
        #expect(backoff.delay(attempt: 3, unit: 0) == 0)
        #expect(backoff.delay(attempt: 3, unit: 1) == 4000)
        #expect(backoff.delay(attempt: 3, unit: 0.25) == 1000)
    }

    @Test func randomDelaysStayWithinBounds() {
        for attempt in 0..<20 {
            let delay = backoff.delay(attempt: attempt)
            #expect(delay >= 0 && delay <= backoff.ceiling(attempt: attempt))
        }
    }
}
