/// The rate limits on registration requests: one bucket per device
/// (`registration.maxRequestsPerDevicePerMinute`) and one for the hub
/// (`registration.maxRequestsPerMinute`). A request takes a token from both or from neither.
/// Memory is bounded: a device's bucket exists only while it is not full again, and new buckets
/// are made only for requests the hub-wide bucket lets through, so there are at most about
/// `maxRequestsPerMinute` of them. A value type, time passed in.
public struct RegistrationRateLimit: Sendable {
    public enum Verdict: String, Sendable, Equatable {
        case allowed
        /// The device asked too often.
        case device
        /// The hub as a whole is over its limit.
        case hub
    }

    public let perDevice: Int
    public let perHub: Int
    private var hub: TokenBucket
    private var devices: [String: TokenBucket] = [:]
    private var lastSweep: ContinuousClock.Instant

    public init(perDevicePerMinute: Int, perMinute: Int, at now: ContinuousClock.Instant) {
        perDevice = perDevicePerMinute
        perHub = perMinute
        hub = TokenBucket(perMinute: perMinute, at: now)
        lastSweep = now
    }

    /// Buckets kept for devices (for tests and the memory bound).
    public var trackedDevices: Int { devices.count }

    public mutating func admit(_ device: String, at now: ContinuousClock.Instant) -> Verdict {
        sweep(at: now)
        var bucket = devices[device] ?? TokenBucket(perMinute: perDevice, at: now)
        guard bucket.hasToken(at: now) else {
            devices[device] = bucket
            return .device
        }
        guard hub.take(at: now) else { return .hub }
        _ = bucket.take(at: now)
        devices[device] = bucket
        return .allowed
    }

    /// Drops the buckets that are full again (at most once a second).
    private mutating func sweep(at now: ContinuousClock.Instant) {
        guard lastSweep.duration(to: now) >= .seconds(1) else { return }
        lastSweep = now
        devices = devices.filter { _, bucket in
            var bucket = bucket
            return !bucket.isFull(at: now)
        }
    }
}
