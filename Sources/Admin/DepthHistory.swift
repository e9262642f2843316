import Foundation
import Synchronization

/// The outbox depth and the event counters over the last hour (one sample every `interval`), for
/// the status page's chart: its rates are the counters' differences between samples.
final class DepthHistory: Sendable {
    struct Sample: Codable, Equatable {
        var ts: Int64
        var depth: Int64
        /// Device events taken since start (stored + duplicate + rejected).
        var received: Int64 = 0
        /// Events the upstream broker acknowledged since start.
        var forwarded: Int64 = 0
        /// Bytes the daemon had written to storage since start (nil where not counted).
        var written: Int64? = nil
    }

    let capacity: Int
    private let samples = Mutex<[Sample]>([])

    init(capacity: Int = 120) {
        self.capacity = capacity
    }

    func record(
        depth: Int64, received: Int64 = 0, forwarded: Int64 = 0, written: Int64? = nil,
        atMs now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) {
        samples.withLock { samples in
            samples.append(Sample(ts: now, depth: depth, received: received, forwarded: forwarded, written: written))
            if samples.count > capacity { samples.removeFirst(samples.count - capacity) }
        }
    }

    var all: [Sample] { samples.withLock { $0 } }

    /// Bytes written to storage per day at the rate between the oldest sample and `now` (at least
    /// a minute apart, so a burst at start does not read as a day's wear); nil before that.
    func writtenPerDay(now: (ts: Int64, written: Int64?)) -> Int64? {
        guard let current = now.written,
            let first = samples.withLock({ $0.first(where: { $0.written != nil }) }), let base = first.written,
            now.ts - first.ts >= 60_000
        else { return nil }
        return max(0, current - base) * 86_400_000 / (now.ts - first.ts)
    }
}

/// The last dialogs answered, newest first, for the status page.
final class RecentDialogs: Sendable {
    struct Entry: Codable, Equatable {
        var ts: Int64
        var deviceId: String
        var type: String
        /// The response payload as sent to the device (JSON text).
        var payload: String
    }

    let capacity: Int
    private let entries = Mutex<[Entry]>([])

    init(capacity: Int = 20) {
        self.capacity = capacity
    }

    func record(_ entry: Entry) {
        entries.withLock { entries in
            entries.insert(entry, at: 0)
            if entries.count > capacity { entries.removeLast(entries.count - capacity) }
        }
    }

    var all: [Entry] { entries.withLock { $0 } }
}
