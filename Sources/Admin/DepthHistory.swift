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
    }

    let capacity: Int
    private let samples = Mutex<[Sample]>([])

    init(capacity: Int = 120) {
        self.capacity = capacity
    }

    func record(depth: Int64, received: Int64 = 0, forwarded: Int64 = 0, atMs now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        samples.withLock { samples in
            samples.append(Sample(ts: now, depth: depth, received: received, forwarded: forwarded))
            if samples.count > capacity { samples.removeFirst(samples.count - capacity) }
        }
    }

    var all: [Sample] { samples.withLock { $0 } }
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
