import Synchronization

/// What the writer's open transaction holds that other connections cannot see yet: events made
/// durable in the event log but not committed to the database, and committed events it has
/// deleted. Readers (the forwarder, the admin API) merge it into what they read, so an event is
/// forwardable the moment it is acked. Emptied when the transaction commits.
///
/// A reader takes ``snapshot()`` before it starts its read transaction: whatever the view no
/// longer holds was committed before that, so the read sees it.
final class UncommittedView: Sendable {
    struct State: Sendable {
        /// Events appended in the open transaction and not deleted since, in `seq` order.
        var inserted: [StoredEvent] = []
        /// Committed events the open transaction deleted, ascending (what lies past a reader's
        /// cursor is a suffix).
        var hidden: [Int64] = []
        /// Depth and bytes including the open transaction (nil when none is open).
        var depth: (count: Int64, bytes: Int64)?
        /// Counter increments (drops, rejects, wear) the open transaction wrote.
        var counters: [String: Int64] = [:]

        var isEmpty: Bool { inserted.isEmpty && hidden.isEmpty && depth == nil && counters.isEmpty }

        /// Whether the open transaction deleted the committed event `seq` (binary search).
        func isHidden(_ seq: Int64) -> Bool {
            let index = UncommittedView.firstIndex(in: hidden, after: seq - 1)
            return index < hidden.count && hidden[index] == seq
        }

        /// At most `limit` of the transaction's events past `seq`.
        func inserted(after seq: Int64, limit: Int) -> [StoredEvent] {
            let start = UncommittedView.firstIndex(in: inserted, after: seq)
            return Array(inserted[start..<min(start + max(limit, 0), inserted.count)])
        }

        /// What a reader without the writer (`edge-gateway outbox stats` beside a running daemon)
        /// knows of the open transaction: the events in the event log after the last committed one.
        /// Its deletions and counters are not in the log.
        static func fromLog(_ entries: [(seq: Int64, record: OutboxRecord)], after lastCommitted: Int64) -> State {
            var state = State()
            for (seq, record) in entries where seq > lastCommitted {
                state.inserted.append(StoredEvent(
                    seq: seq, device: record.device, eventID: record.eventID, key: record.key,
                    receivedAt: record.receivedAt, payload: record.payload, topic: record.topic))
            }
            return state
        }

        /// `committed` (rows read with `seq > after`, in order, at least `limit` of them or all)
        /// merged with the open transaction: its deletions taken out, its events added.
        func merge(_ committed: [StoredEvent], after: Int64, limit: Int, device: String? = nil) -> [StoredEvent] {
            guard !isEmpty else { return Array(committed.prefix(limit)) }
            var result = committed.filter { !isHidden($0.seq) }
            for event in inserted where event.seq > after && (device == nil || event.device == device) {
                result.append(event)
            }
            // A row committed between the snapshot and the read is in both: once is enough.
            var seen = Set<Int64>()
            result = result.filter { seen.insert($0.seq).inserted }
            result.sort { $0.seq < $1.seq }
            return Array(result.prefix(limit))
        }
    }

    private let state = Mutex(State())

    func snapshot() -> State { state.withLock { $0 } }

    /// What `pending(after:limit:)` needs of the open transaction, taken under the lock: at most
    /// `limit` of its events past `seq` (more could never be among the first `limit` merged) and
    /// its deletions past `seq` (the only ones a read of `seq > after` meets). The forwarder asks
    /// for every few acknowledged events; a copy of the whole state each time would also make the
    /// writer's next change copy all of it (copy-on-write): the cost grew with the open
    /// transaction (thousands of events at a flood).
    func window(after seq: Int64, limit: Int) -> State {
        state.withLock { state in
            guard !state.isEmpty else { return State() }
            var window = State(depth: state.depth, counters: state.counters)
            window.inserted = state.inserted(after: seq, limit: limit)
            window.hidden = Array(state.hidden[Self.firstIndex(in: state.hidden, after: seq)...])
            return window
        }
    }

    /// The next `limit` events past `seq` when they can only be in the open transaction: every
    /// committed row is older than the transaction's first event (sequence numbers grow), so with
    /// the cursor at or past the oldest event the view holds, no committed row lies past it. Nil
    /// otherwise (the reader reads the database). The forwarder at a flood is there nearly always,
    /// and skips a read on the reader's queue (a thread hop each way) per refill of its window.
    func pendingInMemory(after seq: Int64, limit: Int) -> [StoredEvent]? {
        state.withLock { state in
            guard let first = state.inserted.first, seq >= first.seq - 1 else { return nil }
            return state.inserted(after: seq, limit: limit)
        }
    }

    /// The first index whose `seq` is greater than `after` (binary search; `events` is in `seq` order).
    static func firstIndex(in events: [StoredEvent], after: Int64) -> Int {
        firstIndex(of: events.count, after: after) { events[$0].seq }
    }

    /// The first index whose value is greater than `after` (binary search; `values` ascending).
    static func firstIndex(in values: [Int64], after: Int64) -> Int {
        firstIndex(of: values.count, after: after) { values[$0] }
    }

    private static func firstIndex(of count: Int, after: Int64, seq: (Int) -> Int64) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if seq(middle) > after { high = middle } else { low = middle + 1 }
        }
        return low
    }

    var hiddenCount: Int { state.withLock { $0.hidden.count } }

    /// After a group of the open transaction: its new events, what it deleted, the depth.
    func publish(inserted: [StoredEvent], deleted: [Int64], count: Int64, bytes: Int64) {
        state.withLock { state in
            let gone = Set(deleted)
            if !gone.isEmpty {
                // Events of this transaction that are gone again leave the list; the other
                // deletions are of committed rows, which readers must no longer see.
                var own = Set(state.inserted.map(\.seq))
                for event in inserted { own.insert(event.seq) }
                state.inserted.removeAll { gone.contains($0.seq) }
                let added = gone.filter { !own.contains($0) && !state.isHidden($0) }.sorted()
                // Removals come in sequence order, so this is nearly always an append.
                let inOrder = (state.hidden.last ?? .min) < (added.first ?? .max)
                state.hidden.append(contentsOf: added)
                if !inOrder { state.hidden.sort() }
            }
            state.inserted.append(contentsOf: gone.isEmpty ? inserted : inserted.filter { !gone.contains($0.seq) })
            state.depth = (count, bytes)
        }
    }

    func publish(counters: [String: Int64]) {
        state.withLock { state in
            for (name, value) in counters { state.counters[name, default: 0] += value }
        }
    }

    /// The event log's events that wait to go into the database (no transaction open): readers see
    /// them as stored.
    func showWaiting(_ events: [StoredEvent], count: Int64, bytes: Int64) {
        state.withLock { $0 = State(inserted: events, depth: (count, bytes)) }
    }

    /// The open transaction committed (or was rolled back): the database is the truth again.
    func clear() { state.withLock { $0 = State() } }
}
