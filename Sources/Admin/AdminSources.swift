import GatewayCore
import MLLink
import Outbox
import Registration
import Reporting

/// What the admin API reads and asks of the rest of the daemon, as closures, so the operator's view
/// never reaches into a component's internals and tests can serve it without the whole daemon.
public struct AdminSources: Sendable {
    /// `/readyz`: ready when the store is open and the device broker subscription stands; the
    /// upstream link is reported but not required (the outbox holds events while it is down).
    public struct Readiness: Sendable, Equatable, Codable {
        public var ready: Bool { storeOpen && deviceSubscribed }
        public var storeOpen: Bool
        public var deviceBrokerConnected: Bool
        public var deviceSubscribed: Bool
        public var upstreamConnected: Bool
        public var upstreamLastError: String?

        public init(storeOpen: Bool, deviceBrokerConnected: Bool, deviceSubscribed: Bool, upstreamConnected: Bool, upstreamLastError: String?) {
            self.storeOpen = storeOpen
            self.deviceBrokerConnected = deviceBrokerConnected
            self.deviceSubscribed = deviceSubscribed
            self.upstreamConnected = upstreamConnected
            self.upstreamLastError = upstreamLastError
        }
    }

    /// One device for `GET /api/devices`: its last activity and, with registration on, its registration.
    public struct Device: Sendable, Equatable, Codable {
        public var deviceId: String
        public var lastSeenMs: Int64?
        public var lastChannel: String?
        public var messages: Int64
        public var rejected: Int64
        public var registered: Bool?
        public var userId: String?
        public var type: String?
        /// What the device announced on `device/{id}/status` (CONTRACTS.md §5); nil: never announced.
        public var announcedOnline: Bool?
        /// Cloud commands for it not finished yet (queued, in flight, delivered); nil: commands are off.
        public var pendingCommands: Int?
        /// Online now (CONTRACTS.md §5: as announced, else heard from within `devices.presenceSeconds`);
        /// nil for a device never heard from.
        public var online: Bool?

        public init(
            deviceId: String, lastSeenMs: Int64?, lastChannel: String?, messages: Int64, rejected: Int64,
            registered: Bool?, userId: String?, type: String?, announcedOnline: Bool? = nil, pendingCommands: Int? = nil,
            online: Bool? = nil
        ) {
            self.online = online
            self.announcedOnline = announcedOnline
            self.pendingCommands = pendingCommands
            self.deviceId = deviceId
            self.lastSeenMs = lastSeenMs
            self.lastChannel = lastChannel
            self.messages = messages
            self.rejected = rejected
            self.registered = registered
            self.userId = userId
            self.type = type
        }
    }

    /// One broker link as the status page shows it (values the ingress and the forwarder publish).
    public struct Link: Sendable, Equatable, Codable {
        /// `host:port` of the broker.
        public var address: String
        /// Device broker: `subscribed`, `connected` (not yet subscribed) or `down`; upstream: `connected` or `down`.
        public var state: String
        /// When the state last changed (ms since the epoch); nil before the first change.
        public var sinceMs: Int64?
        /// Why the link is (or was last) down.
        public var lastError: String?
        /// Upstream with several addresses (`upstream.hosts`): all of them, in order (``address`` is
        /// the one in use); nil with one.
        public var addresses: [String]?
        /// Upstream: moves to another address after a failure since the start (failovers).
        public var failovers: Int64?

        public init(
            address: String, state: String, sinceMs: Int64?, lastError: String?, addresses: [String]? = nil, failovers: Int64? = nil
        ) {
            self.address = address
            self.state = state
            self.sinceMs = sinceMs
            self.lastError = lastError
            self.addresses = addresses
            self.failovers = failovers
        }
    }

    /// The hub microphone's wake-word server (`audio.wake.endpoint`), as the status page shows it.
    public struct Wake: Sendable, Equatable, Codable {
        /// `host:port` of the server.
        public var address: String
        /// `audio.wake.mode`: `wake` or `both`.
        public var mode: String
        /// `connected` (a `detect` conversation stands) or `down`.
        public var state: String
        /// When the state last changed (ms since the epoch); nil before the first change.
        public var sinceMs: Int64?
        /// Why the last conversation failed.
        public var lastError: String?
        /// Detections since start, the last one's name and when it came (ms since the epoch).
        public var detections: Int64
        public var lastName: String?
        public var lastMs: Int64?

        public init(
            address: String, mode: String, state: String, sinceMs: Int64?, lastError: String?, detections: Int64, lastName: String?,
            lastMs: Int64?
        ) {
            self.address = address
            self.mode = mode
            self.state = state
            self.sinceMs = sinceMs
            self.lastError = lastError
            self.detections = detections
            self.lastName = lastName
            self.lastMs = lastMs
        }
    }

    /// Device events since the daemon started, as the ingress and the forwarder count them.
    public struct Traffic: Sendable, Equatable, Codable {
        /// Acked `stored`.
        public var stored: Int64
        /// Acked `duplicate` (a repeat of a stored `eventId`).
        public var duplicate: Int64
        /// Acked `rejected`.
        public var rejected: Int64
        /// Acknowledged by the upstream broker and removed from the outbox.
        public var forwarded: Int64
        /// `rejected` by reason.
        public var rejectedByReason: [String: Int64]

        public init(stored: Int64 = 0, duplicate: Int64 = 0, rejected: Int64 = 0, forwarded: Int64 = 0, rejectedByReason: [String: Int64] = [:]) {
            self.stored = stored
            self.duplicate = duplicate
            self.rejected = rejected
            self.forwarded = forwarded
            self.rejectedByReason = rejectedByReason
        }
    }

    /// The registration saga, when `registration.enabled`.
    public struct Registrations: Sendable {
        public var register: @Sendable (DeviceID, [UInt8]) async -> RegistrationResult
        public var needingAttention: @Sendable () async -> [SagaStore.Record]

        public init(
            register: @escaping @Sendable (DeviceID, [UInt8]) async -> RegistrationResult,
            needingAttention: @escaping @Sendable () async -> [SagaStore.Record]
        ) {
            self.register = register
            self.needingAttention = needingAttention
        }
    }

    public var hubID: String
    /// `store.path` as configured: `GET /api` names it, so the CLI knows the daemon it reaches is
    /// the one of its configuration.
    public var storePath = ""
    public var readiness: @Sendable () -> Readiness
    public var outboxStats: @Sendable () async throws -> OutboxStats
    /// The next events to be sent (of one device or all), at most `limit`.
    public var outboxPeek: @Sendable (_ device: String?, _ limit: Int) async throws -> [StoredEvent]
    /// Depth and bytes as of the last commit (cheap: no disk).
    public var outboxDepth: @Sendable () -> (count: Int64, bytes: Int64)
    public var devices: @Sendable () -> [Device]
    public var mlEndpoints: @Sendable () -> [MLEndpointPool.EndpointStatus]
    public var registrations: Registrations?
    /// Cloud commands (`commands.enabled`); nil when they are off.
    public var commands: Commands?
    /// Device shadows (`shadow.enabled`); nil when they are off.
    public var shadows: Shadows?
    /// The device broker's events connection and the upstream link.
    public var links: @Sendable () -> (deviceBroker: Link, upstream: Link)
    /// Event counts since start, for the status page's totals and rates.
    public var traffic: @Sendable () -> Traffic
    /// The last warnings and errors the daemon logged, newest first.
    public var recentProblems: @Sendable () -> [RecentLog.Entry]
    /// Bytes the daemon made the kernel write to storage since it started (its SQLite stores);
    /// nil where the kernel does not count them.
    public var diskWritten: @Sendable () -> Int64?
    /// The wake-word server; nil without one (or with the microphone off).
    public var wake: @Sendable () -> Wake?
    /// Brings gauges that are read rather than pushed (outbox depth and age, link states) up to
    /// date before `/metrics` is rendered.
    public var refreshMetrics: @Sendable () async -> Void

    public init(
        hubID: String,
        readiness: @escaping @Sendable () -> Readiness,
        outboxStats: @escaping @Sendable () async throws -> OutboxStats,
        outboxDepth: @escaping @Sendable () -> (count: Int64, bytes: Int64),
        devices: @escaping @Sendable () -> [Device],
        mlEndpoints: @escaping @Sendable () -> [MLEndpointPool.EndpointStatus],
        registrations: Registrations?,
        commands: Commands? = nil,
        shadows: Shadows? = nil,
        links: @escaping @Sendable () -> (deviceBroker: Link, upstream: Link) = {
            (.init(address: "", state: "down", sinceMs: nil, lastError: nil), .init(address: "", state: "down", sinceMs: nil, lastError: nil))
        },
        traffic: @escaping @Sendable () -> Traffic = { .init() },
        recentProblems: @escaping @Sendable () -> [RecentLog.Entry] = { [] },
        diskWritten: @escaping @Sendable () -> Int64? = { nil },
        wake: @escaping @Sendable () -> Wake? = { nil },
        outboxPeek: @escaping @Sendable (String?, Int) async throws -> [StoredEvent] = { _, _ in [] },
        refreshMetrics: @escaping @Sendable () async -> Void
    ) {
        self.outboxPeek = outboxPeek
        self.hubID = hubID
        self.readiness = readiness
        self.outboxStats = outboxStats
        self.outboxDepth = outboxDepth
        self.devices = devices
        self.mlEndpoints = mlEndpoints
        self.registrations = registrations
        self.commands = commands
        self.shadows = shadows
        self.links = links
        self.traffic = traffic
        self.recentProblems = recentProblems
        self.diskWritten = diskWritten
        self.wake = wake
        self.refreshMetrics = refreshMetrics
    }
}
