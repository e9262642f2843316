import Foundation
import Outbox

extension OutboxConfiguration {
    /// `store.*`. An empty `store.path` means `$STATE_DIRECTORY/outbox.db` under systemd, else
    /// `./var/outbox.db`.
    init(_ v: inout ConfigValues, environment: [String: String]) {
        var path = v.string("store.path", default: "")
        if path.isEmpty {
            let base = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) } ?? "./var"
            path = (base as NSString).appendingPathComponent("outbox.db")
            v.resolve("store.path", to: path, "empty: $STATE_DIRECTORY/outbox.db under systemd, else ./var/outbox.db")
        }
        self.init(path: path)
        let large = Int(Int64.max / 4)
        maxBytes = Int64(v.int("store.maxBytes", default: Int(maxBytes), range: 4096...large))
        maxFileBytes = Int64(v.int("store.maxFileBytes", default: Int(maxFileBytes), range: 0...large))
        if maxFileBytes > 0, maxFileBytes < maxBytes {
            v.fail("store.maxFileBytes", "must be 0 or at least store.maxBytes (\(maxBytes))")
        }
        reserveBytes = Int64(v.int("store.reserveBytes", default: Int(reserveBytes), range: 0...(1 << 40)))
        maxAgeSeconds = Int64(v.int("store.maxAgeSeconds", default: Int(maxAgeSeconds), range: 1...Int(Int32.max)))
        whenFull = v.choice("store.whenFull", default: whenFull)
        maxEvictionBytes = Int64(v.int("store.maxEvictionBytes", default: Int(maxEvictionBytes), range: 65536...large))
        synchronous = v.choice("store.synchronous", default: synchronous)
        commitIntervalMs = v.int("store.commitIntervalMs", default: commitIntervalMs, range: 0...1000)
        maxBatch = v.int("store.maxBatch", default: maxBatch, range: 1...100_000)
        eventLogBytes = Int64(v.int("store.eventLogBytes", default: Int(eventLogBytes), range: 0...(256 << 20)))
        if eventLogBytes > 0, eventLogBytes < 65536 {
            v.fail("store.eventLogBytes", "must be 0 (off) or at least 65536")
        }
        eventLogSeconds = v.int("store.eventLogSeconds", default: eventLogSeconds, range: 1...3600)
        eventLogIdleMs = v.int("store.eventLogIdleMs", default: eventLogIdleMs, range: 10...600_000)
        removalDelayMs = v.int("store.removalDelayMs", default: removalDelayMs, range: 0...60_000)
        dedupRetentionSeconds = Int64(v.int("store.dedupRetentionSeconds", default: Int(dedupRetentionSeconds), range: 0...Int(Int32.max)))
        dedupMaxEntries = v.int("store.dedupMaxEntries", default: dedupMaxEntries, range: 1...100_000_000)
        requireSyncedClock = v.bool("store.requireSyncedClock", default: requireSyncedClock)
        maintenanceIntervalSeconds = v.int("store.maintenanceIntervalSeconds", default: maintenanceIntervalSeconds, range: 1...86400)
    }
}
