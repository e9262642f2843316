import GatewayCore

/// The unfinished commands, in memory, and the decisions over them (what to send now, when to
/// wake, what expired): a value with the time passed in, so every decision is a plain function
/// of its state (``CommandQueue`` persists each change before it applies it here).
struct CommandBook: Sendable {
    private(set) var records: [CommandKey: CommandRecord] = [:]
    /// Each device's unfinished commands in queue order (`seq`).
    private(set) var order: [DeviceID: [CommandKey]] = [:]

    /// Commands the device had accepted before the gateway stopped or crashed. Their final result
    /// may have been lost with it (libmosquitto acknowledges a message to the broker before the
    /// gateway has stored it, and a device sends its result once), so they are sent again, like
    /// one not accepted yet, until the device answers anything (a repeated `accepted` too).
    private var unsure: Set<CommandKey> = []

    init(_ unfinished: [CommandRecord] = []) {
        for record in unfinished.sorted(by: { $0.seq < $1.seq }) { put(record) }
        unsure = Set(unfinished.filter { $0.status == .delivered }.map(\.key))
    }

    /// The device answered `key` after a restart: its result is no longer in doubt.
    mutating func heardFrom(_ key: CommandKey) {
        unsure.remove(key)
    }

    /// Accepted before a restart and not heard of since: sent again like one not accepted yet.
    func isInDoubt(_ record: CommandRecord) -> Bool {
        record.status == .delivered && unsure.contains(record.key)
    }

    /// Sent and waiting for `accepted` or a final result (re-sent after `commands.ackTimeoutSeconds`).
    private func awaitsAnswer(_ record: CommandRecord) -> Bool {
        record.isInFlight || isInDoubt(record)
    }

    var count: Int { records.count }

    func count(of device: DeviceID) -> Int { order[device]?.count ?? 0 }

    subscript(key: CommandKey) -> CommandRecord? { records[key] }

    /// Adds or replaces `record`; a finished one leaves the book.
    mutating func put(_ record: CommandRecord) {
        let key = record.key
        if record.status.isFinal {
            unsure.remove(key)
            guard records.removeValue(forKey: key) != nil else { return }
            order[record.device]?.removeAll { $0 == key }
            if order[record.device]?.isEmpty == true { order[record.device] = nil }
            return
        }
        if records.updateValue(record, forKey: key) == nil {
            // New commands come in increasing seq, except at load (sorted there).
            order[record.device, default: []].append(key)
        }
    }

    /// The deliveries to make at `nowMs` to the devices `isOnline` accepts: per device, in queue
    /// order, re-sends of sent commands that neither `accepted` nor finished within `ackTimeoutMs`,
    /// then first sends while fewer than `inflight` are sent and unfinished. Never an expired one.
    /// Sorted by `seq` (queue order, also per device).
    func due(nowMs: Int64, ackTimeoutMs: Int64, inflight: Int, isOnline: (DeviceID) -> Bool, only: DeviceID? = nil) -> [CommandDelivery] {
        var deliveries: [CommandDelivery] = []
        let devices = only.map { [$0] } ?? Array(order.keys)
        for device in devices {
            guard let keys = order[device], isOnline(device) else { continue }
            var held = 0
            for key in keys {
                guard let record = records[key], !record.isExpired(at: nowMs), record.holdsInflightPlace else { continue }
                held += 1
                if awaitsAnswer(record), let sent = record.lastSentAt, nowMs >= sent.addingClamped(ackTimeoutMs) {
                    deliveries.append(CommandDelivery(record: record))
                }
            }
            for key in keys where held < inflight {
                guard let record = records[key], !record.isExpired(at: nowMs), !record.holdsInflightPlace else { continue }
                held += 1
                deliveries.append(CommandDelivery(record: record))
            }
        }
        return deliveries.sorted { $0.record.seq < $1.record.seq }
    }

    /// The earliest time (ms) at which ``due(nowMs:ackTimeoutMs:inflight:isOnline:only:)`` or an
    /// expiry has something to do: an expiry of any unfinished command, a re-send to an online
    /// device, or `nowMs` when an online device has a command waiting for a free place. Nil when
    /// nothing will happen without a new event (a command, a result, a device coming online).
    func nextWake(nowMs: Int64, ackTimeoutMs: Int64, inflight: Int, isOnline: (DeviceID) -> Bool) -> Int64? {
        var earliest: Int64? = nil
        func consider(_ time: Int64) { earliest = min(earliest ?? time, time) }
        for (device, keys) in order {
            let online = isOnline(device)
            var held = 0
            var waiting = false
            for key in keys {
                guard let record = records[key] else { continue }
                if let expiresAt = record.expiresAt { consider(expiresAt) }
                guard !record.isExpired(at: nowMs) else { continue }
                if record.holdsInflightPlace {
                    held += 1
                    if online, awaitsAnswer(record), let sent = record.lastSentAt { consider(sent.addingClamped(ackTimeoutMs)) }
                } else {
                    waiting = true
                }
            }
            if online, waiting, held < inflight { consider(nowMs) }
        }
        return earliest
    }

    /// Unfinished commands at or past their expiry, in queue order.
    func expired(nowMs: Int64) -> [CommandRecord] {
        records.values.filter { $0.isExpired(at: nowMs) }.sorted { $0.seq < $1.seq }
    }

    /// Unfinished commands of `device` (or all), in queue order.
    func unfinished(device: DeviceID?) -> [CommandRecord] {
        if let device { return (order[device] ?? []).compactMap { records[$0] } }
        return records.values.sorted { $0.seq < $1.seq }
    }

    func pending(_ device: DeviceID) -> PendingCommands {
        var counts = PendingCommands()
        for key in order[device] ?? [] {
            guard let record = records[key] else { continue }
            counts.add(record)
        }
        return counts
    }

    func pending() -> [DeviceID: PendingCommands] {
        var all: [DeviceID: PendingCommands] = [:]
        for record in records.values { all[record.device, default: PendingCommands()].add(record) }
        return all
    }
}

/// A device's unfinished commands, for the status page and the operator.
public struct PendingCommands: Sendable, Equatable {
    /// Stored and not sent yet.
    public var waiting = 0
    /// Sent, neither accepted nor finished.
    public var inFlight = 0
    /// Accepted by the device, not finished.
    public var delivered = 0

    public init(waiting: Int = 0, inFlight: Int = 0, delivered: Int = 0) {
        self.waiting = waiting
        self.inFlight = inFlight
        self.delivered = delivered
    }

    public var total: Int { waiting + inFlight + delivered }

    mutating func add(_ record: CommandRecord) {
        if record.status == .delivered {
            delivered += 1
        } else if record.isInFlight {
            inFlight += 1
        } else {
            waiting += 1
        }
    }
}

/// One publish to make on `device/{id}/command`: the command as it stands and its payload.
public struct CommandDelivery: Sendable, Equatable {
    public var record: CommandRecord

    public var device: DeviceID { record.device }
    public var commandID: String { record.commandID }
    /// True when the device was sent this command before (same `commandId`).
    public var isResend: Bool { record.attempts > 0 }
    /// `{"commandId", "name", "params", "expiresAt"}` (``CommandDeliveryPayload``).
    public var payload: [UInt8] { CommandDeliveryPayload.encode(record) }
}

extension Int64 {
    /// `seconds` in ms, clamped instead of overflowing (a configured value is not trusted to be sane).
    static func milliseconds(seconds: Int) -> Int64 {
        let product = Int64(clamping: seconds).multipliedReportingOverflow(by: 1000)
        return product.overflow ? (seconds > 0 ? .max : .min) : product.partialValue
    }

    func addingClamped(_ other: Int64) -> Int64 {
        let sum = addingReportingOverflow(other)
        return sum.overflow ? (other > 0 ? .max : .min) : sum.partialValue
    }
}
