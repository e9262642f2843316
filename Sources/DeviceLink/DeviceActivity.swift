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

    public init(maxDevices: Int = 10_000) {
        self.maxDevices = max(1, maxDevices)
        devices = Mutex([:])
    }

    /// Notes one message from `device` (an already validated id).
    public func record(_ device: DeviceID, channel: String, rejected: Bool = false, atMs now: Int64) {
        devices.withLock { devices in
            if var known = devices[device.rawValue] {
                known.lastSeenMs = max(known.lastSeenMs, now)
                known.lastChannel = channel
                known.messages += 1
                if rejected { known.rejected += 1 }
                devices[device.rawValue] = known
                return
            }
            if devices.count >= maxDevices, let oldest = devices.values.min(by: { $0.lastSeenMs < $1.lastSeenMs }) {
                devices[oldest.deviceId] = nil
            }
            devices[device.rawValue] = Device(
                deviceId: device.rawValue, lastSeenMs: now, lastChannel: channel, messages: 1, rejected: rejected ? 1 : 0)
        }
    }

    /// Notes a presence announcement of `device` (`device/{id}/status`, CONTRACTS.md §5); it counts
    /// as a message too.
    public func announce(_ device: DeviceID, online: Bool, atMs now: Int64) {
        record(device, channel: "status", atMs: now)
        devices.withLock { $0[device.rawValue]?.announcedOnline = online }
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
