import GatewayCore
import Synchronization

/// The devices this hub has heard from since it started, with their last activity, for the admin
/// API (`GET /api/devices`) and the status page. Bounded: past `maxDevices` the device heard from
/// longest ago is forgotten, so a flood of made-up device ids cannot grow memory.
///
/// It belongs to the device edge: what arrives from devices (events and telemetry, audio,
/// registrations) is noted here; readers get values (``all``, ``count``).
public final class DeviceActivity: Sendable {
    /// One device as last seen.
    public struct Device: Sendable, Equatable, Codable {
        public var deviceId: String
        /// Milliseconds since the epoch of the last message.
        public var lastSeenMs: Int64
        /// What the last message was: `event`, `telemetry`, `audio` or `register`.
        public var lastChannel: String
        /// Messages taken from this device (valid or not) since the gateway started.
        public var messages: Int64
        /// Of those, rejected ones.
        public var rejected: Int64
        /// What the device last announced on `device/{id}/status` (CONTRACTS.md §5): true from its
        /// `{"online": true}` until its `{"online": false}` (or its will); nil when it never announced.
        public var announcedOnline: Bool?

        /// Online (CONTRACTS.md §5): as announced, else when it published within `presenceSeconds` of `nowMs`.
        public func isOnline(nowMs: Int64, presenceSeconds: Int) -> Bool {
            announcedOnline ?? (lastSeenMs >= nowMs - Int64(presenceSeconds) * 1000)
        }
    }

    private let maxDevices: Int
    private let devices: Mutex<[String: Device]>
    /// `devices.presenceSeconds`: how long a device that never announces counts as online after it
    /// published (settable: a configuration reload changes it).
    public let presenceSeconds: Atomic<Int>
    private let comingOnline = AsyncStream.makeStream(of: DeviceID.self, bufferingPolicy: .bufferingNewest(1024))

    public init(maxDevices: Int = 10_000, presenceSeconds: Int = 300) {
        self.maxDevices = max(1, maxDevices)
        self.presenceSeconds = Atomic(presenceSeconds)
        devices = Mutex([:])
    }

    /// Devices as they come online (CONTRACTS.md §5): an `{"online": true}` after none or
    /// `false`, or any message from a device that does not announce and was silent for
    /// `presenceSeconds` (or never heard of). Commands and shadow deltas waiting for a device go
    /// out then. One consumer; when it lags, the oldest notices are dropped (it catches up on its
    /// next regular look at what is due).
    public var arrivals: AsyncStream<DeviceID> { comingOnline.stream }

    /// Whether `device` is online now (CONTRACTS.md §5); false when it is not known.
    public func isOnline(_ device: DeviceID, nowMs: Int64) -> Bool {
        let presence = presenceSeconds.load(ordering: .relaxed)
        return devices.withLock { $0[device.rawValue]?.isOnline(nowMs: nowMs, presenceSeconds: presence) } ?? false
    }

    /// Notes one message from `device` (an already validated id).
    public func record(_ device: DeviceID, channel: String, rejected: Bool = false, atMs now: Int64) {
        note(device, channel: channel, rejected: rejected, announced: nil, atMs: now)
    }

    /// Notes a presence announcement of `device` (`device/{id}/status`, CONTRACTS.md §5); it counts
    /// as a message too.
    public func announce(_ device: DeviceID, online: Bool, atMs now: Int64) {
        note(device, channel: "status", rejected: false, announced: online, atMs: now)
    }

    private func note(_ device: DeviceID, channel: String, rejected: Bool, announced: Bool?, atMs now: Int64) {
        let presence = presenceSeconds.load(ordering: .relaxed)
        let cameOnline = devices.withLock { devices -> Bool in
            if var known = devices[device.rawValue] {
                let wasOnline = known.isOnline(nowMs: now, presenceSeconds: presence)
                known.lastSeenMs = max(known.lastSeenMs, now)
                known.lastChannel = channel
                known.messages += 1
                if rejected { known.rejected += 1 }
                if let announced { known.announcedOnline = announced }
                devices[device.rawValue] = known
                return !wasOnline && known.isOnline(nowMs: now, presenceSeconds: presence)
            }
            if devices.count >= maxDevices, let oldest = devices.values.min(by: { $0.lastSeenMs < $1.lastSeenMs }) {
                devices[oldest.deviceId] = nil
            }
            let new = Device(
                deviceId: device.rawValue, lastSeenMs: now, lastChannel: channel, messages: 1, rejected: rejected ? 1 : 0,
                announcedOnline: announced)
            devices[device.rawValue] = new
            return new.isOnline(nowMs: now, presenceSeconds: presence)
        }
        if cameOnline { comingOnline.continuation.yield(device) }
    }

    /// The device as last seen; nil when it is not known (never heard of, or forgotten past `maxDevices`).
    public func device(_ device: DeviceID) -> Device? {
        devices.withLock { $0[device.rawValue] }
    }

    /// All known devices, most recently seen first.
    public var all: [Device] {
        devices.withLock { Array($0.values) }.sorted { ($0.lastSeenMs, $1.deviceId) > ($1.lastSeenMs, $0.deviceId) }
    }

    public var count: Int { devices.withLock { $0.count } }
}
