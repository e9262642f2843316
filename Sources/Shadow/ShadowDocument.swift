import GatewayCore

/// One device's shadow (CONTRACTS.md §7) with the store's bookkeeping.
///
/// The document the contract names is `desired`, `reported`, `version` and `updatedAt`
/// (``encoded()``); the other versions say what the caller has done with it, so that after a
/// restart it finds what still has to go upstream (``reportedVersion``) or to the device
/// (``deltaSentVersion``).
///
/// A device without a document has the empty one: `{"desired":{},"reported":{},"version":0,"updatedAt":0}`.
public struct ShadowDocument: Sendable, Equatable {
    public var device: DeviceID
    /// What the cloud wants (changed by cloud updates only).
    public var desired: JSONObject
    /// What the device says it has (changed by device reports only).
    public var reported: JSONObject
    /// 0 for no document; every change (of either side) adds 1.
    public var version: Int64
    /// When the last change was applied (ms since the epoch, the caller's clock); 0 for none.
    public var updatedAt: Int64
    /// The version of the last change of `desired` (0: never changed).
    public var desiredVersion: Int64
    /// The last version whose whole document the caller confirmed it stored for upstream
    /// (``ShadowStore/markReported(_:version:)``): the cloud's copy is behind while `version` is
    /// greater. (Upstream reporting; not to be confused with the `reported` section.)
    public var reportedVersion: Int64
    /// The last version whose delta the caller confirmed it sent to the device
    /// (``ShadowStore/markDeltaSent(_:version:)``).
    public var deltaSentVersion: Int64

    public init(
        device: DeviceID, desired: JSONObject = JSONObject(), reported: JSONObject = JSONObject(), version: Int64 = 0, updatedAt: Int64 = 0,
        desiredVersion: Int64 = 0, reportedVersion: Int64 = 0, deltaSentVersion: Int64 = 0
    ) {
        self.device = device
        self.desired = desired
        self.reported = reported
        self.version = version
        self.updatedAt = updatedAt
        self.desiredVersion = desiredVersion
        self.reportedVersion = reportedVersion
        self.deltaSentVersion = deltaSentVersion
    }

    /// The keys of `desired` whose value differs from `reported` (``ShadowDelta``).
    public var delta: JSONObject {
        ShadowDelta.delta(desired: desired, reported: reported)
    }

    /// Whether the cloud's copy is behind: a version the caller has not yet confirmed stored for upstream.
    public var isUnreported: Bool { version > reportedVersion }

    /// Whether a change of `desired` left a non-empty delta the caller has not confirmed sending.
    public var hasUndeliveredDelta: Bool { desiredVersion > deltaSentVersion && !delta.isEmpty }

    /// The whole document, `{"desired":{…},"reported":{…},"version":n,"updatedAt":ms}`: upstream on
    /// `hubs/{hubId}/shadow/{deviceId}`, to the device on `device/{id}/shadow`, and what
    /// `shadow.maxBytes` is measured on.
    public func encoded() -> [UInt8] {
        Self.encode(desired: desired.encoded(), reported: reported.encoded(), version: version, updatedAt: updatedAt)
    }

    /// The whole document from its sides' JSON.
    static func encode(desired: [UInt8], reported: [UInt8], version: Int64, updatedAt: Int64) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(desired.count + reported.count + 64)
        bytes.append(contentsOf: #"{"desired":"#.utf8)
        bytes.append(contentsOf: desired)
        bytes.append(contentsOf: #","reported":"#.utf8)
        bytes.append(contentsOf: reported)
        bytes.append(contentsOf: #","version":"#.utf8)
        bytes.append(contentsOf: String(version).utf8)
        bytes.append(contentsOf: #","updatedAt":"#.utf8)
        bytes.append(contentsOf: String(updatedAt).utf8)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }

    /// The delta message for `device/{id}/shadow/delta`: `{"delta":{…},"version":n}`.
    public func encodedDelta() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.append(contentsOf: #"{"delta":"#.utf8)
        delta.append(to: &bytes)
        bytes.append(contentsOf: #","version":"#.utf8)
        bytes.append(contentsOf: String(version).utf8)
        bytes.append(UInt8(ascii: "}"))
        return bytes
    }
}
