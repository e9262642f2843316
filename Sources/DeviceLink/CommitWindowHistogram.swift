import Synchronization

/// Distribution of the arrival-to-commit window: from the moment the MQTT network thread handed
/// an event over to the moment its commit was final. This is the time during which the broker
/// already has our PUBACK but the event is not yet durable, so it is reported at shutdown.
final class CommitWindowHistogram: Sendable {
    /// 0.1 ms buckets up to 1 s; the last bucket holds everything slower.
    private static let bucketMicros = 100
    private static let bucketCount = 10_001
    private let state = Mutex<(buckets: [Int64], count: Int64, maxMicros: Int64)>(
        (Array(repeating: 0, count: bucketCount), 0, 0))

    func record(_ window: Duration, count: Int64 = 1) {
        let micros = window.components.seconds * 1_000_000 + window.components.attoseconds / 1_000_000_000_000
        let bucket = min(Int(micros) / Self.bucketMicros, Self.bucketCount - 1)
        state.withLock { state in
            state.buckets[bucket] += count
            state.count += count
            state.maxMicros = max(state.maxMicros, micros)
        }
    }

    /// Percentile in milliseconds (upper edge of its bucket), or nil before any event.
    func percentile(_ fraction: Double) -> Double? {
        state.withLock { state in
            guard state.count > 0 else { return nil }
            let rank = Int64((Double(state.count) * fraction).rounded(.up))
            var seen: Int64 = 0
            for (index, value) in state.buckets.enumerated() {
                seen += value
                if seen >= rank { return Double((index + 1) * Self.bucketMicros) / 1000 }
            }
            return Double(state.maxMicros) / 1000
        }
    }

    var maxMilliseconds: Double { state.withLock { Double($0.maxMicros) / 1000 } }
    var count: Int64 { state.withLock { $0.count } }
}
