/// How the outbox stores, caps and commits. Defaults match `config/gateway.yaml`.
public struct OutboxConfiguration: Sendable, Equatable {
    /// What happens when ``maxBytes`` is reached.
    public enum WhenFull: String, Sendable, CaseIterable {
        /// Evict the oldest events (counted as drops with reason `capacity`).
        case dropOldest
        /// Refuse new events (acked `rejected` with reason `store full`).
        case rejectNew
    }

    /// SQLite's `synchronous` setting.
    public enum Synchronous: String, Sendable, CaseIterable {
        /// fsync on every commit: a committed event survives power loss.
        case full
        /// fsync at checkpoints: survives a process crash, a power cut may lose the last commits.
        case normal
    }

    /// The database file; its directory is created when missing.
    public var path: String
    /// Cap on stored events: payload bytes plus a fixed 64-byte overhead per row (`store.maxBytes`).
    public var maxBytes: Int64 = 256 * 1024 * 1024
    /// Hard cap on the database file; 0 means `2 * maxBytes + 64 MiB`.
    public var maxFileBytes: Int64 = 0
    /// Disk space held in `<path>-reserve` so forwarded events can still be deleted (and the WAL
    /// checkpointed) when the file system fills; new events are refused with `store full` while
    /// it cannot be set aside (`store.reserveBytes`, 0 turns it off).
    public var reserveBytes: Int64 = 8 * 1024 * 1024
    /// Events older than this are dropped with reason `expired`.
    public var maxAgeSeconds: Int64 = 7 * 24 * 3600
    /// What happens at ``maxBytes``.
    public var whenFull: WhenFull = .dropOldest
    /// Most bytes (as ``maxBytes`` counts them) one commit group evicts under `dropOldest`
    /// (`store.maxEvictionBytes`). A store far over its cap (``maxBytes`` lowered on a hub with a
    /// backlog) shrinks by this much a group, and takes new events over the cap meanwhile, instead
    /// of evicting everything in one group: that held the writer for seconds and, inside the event
    /// log's transaction, kept a copy of every page it touched in memory.
    public var maxEvictionBytes: Int64 = 1024 * 1024
    /// fsync on every commit (`full`) or at checkpoints (`normal`).
    public var synchronous: Synchronous = .full
    /// How long an append may wait for others to share its commit.
    public var commitIntervalMs: Int = 2
    /// Most appends in one commit; also the most forwarded events whose removal waits in memory.
    public var maxBatch: Int = 2000
    /// How long the removal of forwarded events may wait in memory before it is committed
    /// (`store.removalDelayMs`). Removals are not urgent (a crash only sends the events again, with
    /// their `eventId`), and removing many at once rewrites each page once instead of once per
    /// commit. They go sooner when the store needs the room, at close and before an upstream switch.
    public var removalDelayMs: Int = 1000
    /// Bytes of the event log (`<path>-events`, written full once): new events are made durable
    /// there, a few hundred bytes each with one `fdatasync` per group, while the database's
    /// transaction stays open and commits once per ``eventLogSeconds`` or when the log is full
    /// (`store.eventLogBytes`, 1 MiB; 0 turns it off: every group commits to the database). Only
    /// with `synchronous: full`. Tools that open the database file directly see it up to
    /// ``eventLogIdleMs`` / ``eventLogSeconds`` behind while the daemon runs; the `outbox` commands
    /// ask the running daemon instead.
    public var eventLogBytes: Int64 = 1 << 20
    /// Longest the database's transaction stays open while new events are only in the event log
    /// (`store.eventLogSeconds`): what a crash puts back from the log at the next start.
    public var eventLogSeconds: Int = 60
    /// The open transaction also commits once the writer has had nothing to do for this long
    /// (`store.eventLogIdleMs`), so after a pause the database file is current for readers that
    /// open it directly.
    public var eventLogIdleMs: Int = 1000
    /// How long a repeat of `(device, eventId)` is recognised after the event was forwarded.
    public var dedupRetentionSeconds: Int64 = 24 * 3600
    /// Most `(device, eventId)` pairs remembered for dedup; the oldest are forgotten first. Bounds
    /// the dedup table's size (roughly 150 bytes an entry) whatever the event rate.
    public var dedupMaxEntries: Int = 500_000
    /// How often expiry and dedup pruning run.
    public var maintenanceIntervalSeconds: Int = 30
    /// Expire events and forget dedup entries by age only while the kernel reports the clock
    /// synchronised. A hub without a real-time clock boots with a stale time; when NTP then jumps
    /// it forward, fresh events would look old. Turn off on hubs that never get NTP (the byte and
    /// count caps still apply).
    public var requireSyncedClock: Bool = true

    /// Defaults for everything but the file.
    public init(path: String) {
        self.path = path
    }

    /// The file cap actually applied.
    public var effectiveMaxFileBytes: Int64 {
        maxFileBytes > 0 ? maxFileBytes : maxBytes * 2 + 64 * 1024 * 1024
    }
}
