/// One event to append: what the forwarder will publish, with its dedup identity.
public struct OutboxRecord: Sendable, Equatable {
    public var device: String
    public var eventID: String
    /// The ordering key (CONTRACTS.md §2).
    public var key: String
    /// Milliseconds since the epoch when the gateway received it.
    public var receivedAt: Int64
    /// The bytes published upstream.
    public var payload: [UInt8]
    /// The upstream topic, when it is not the event topic (`upstream.topic` rendered for the
    /// device): command status messages and shadow documents name theirs.
    public var topic: String?

    public init(device: String, eventID: String, key: String, receivedAt: Int64, payload: [UInt8], topic: String? = nil) {
        self.device = device
        self.eventID = eventID
        self.key = key
        self.receivedAt = receivedAt
        self.payload = payload
        self.topic = topic
    }

    /// What the record counts against `store.maxBytes`: its bytes plus a fixed row overhead.
    var accountedSize: Int64 {
        Int64(payload.count + device.utf8.count + eventID.utf8.count + key.utf8.count + (topic?.utf8.count ?? 0) + 64)
    }
}

/// The result of appending one record.
public enum AppendOutcome: Sendable, Equatable {
    /// Durably committed with this sequence number.
    case stored(seq: Int64)
    /// `(device, eventId)` was stored before (within the dedup retention); not stored again.
    case duplicate
    /// Not stored: the store is full (cap with `rejectNew`, disk full, or a write error).
    case rejectedStoreFull
}

/// A stored event as the forwarder reads it.
public struct StoredEvent: Sendable, Equatable {
    public var seq: Int64
    public var device: String
    public var eventID: String
    public var key: String
    public var receivedAt: Int64
    public var payload: [UInt8]
    /// Its own upstream topic; nil: the event topic template.
    public var topic: String? = nil
}

extension StoredEvent {
    /// What the event counts against `store.maxBytes`, as ``OutboxRecord/accountedSize`` does.
    var accountedSize: Int64 {
        Int64(payload.count + device.utf8.count + eventID.utf8.count + key.utf8.count + (topic?.utf8.count ?? 0) + 64)
    }
}

/// Why stored events were dropped without being forwarded.
public enum DropReason: String, Sendable, CaseIterable {
    /// Evicted to stay under `store.maxBytes` (`whenFull: dropOldest`).
    case capacity
    /// Older than `store.maxAgeSeconds`.
    case expired
}
