import GatewayCore

/// What ``ShadowStore`` keeps in memory for one device: both sides as their compact JSON, not
/// parsed, so a document costs about its serialized size (at most `shadow.maxBytes`), where the
/// parsed form would cost 5–10 times that. Parsed again when a change or a reader needs the values.
struct StoredShadow: Sendable {
    let device: DeviceID
    let desired: [UInt8]
    let reported: [UInt8]
    let version: Int64
    let updatedAt: Int64
    let desiredVersion: Int64
    var reportedVersion: Int64
    var deltaSentVersion: Int64
    /// Whether the delta is empty (kept, so that listing the deltas owed needs no parsing).
    let deltaIsEmpty: Bool

    init(_ document: ShadowDocument) {
        device = document.device
        desired = document.desired.encoded()
        reported = document.reported.encoded()
        version = document.version
        updatedAt = document.updatedAt
        desiredVersion = document.desiredVersion
        reportedVersion = document.reportedVersion
        deltaSentVersion = document.deltaSentVersion
        deltaIsEmpty = document.delta.isEmpty
    }

    /// The document with its values parsed. The bytes are the store's own encoding, so parsing
    /// cannot fail; should it anyway, that side reads as empty rather than stopping the daemon.
    var document: ShadowDocument {
        ShadowDocument(
            device: device, desired: Self.object(desired), reported: Self.object(reported), version: version, updatedAt: updatedAt,
            desiredVersion: desiredVersion, reportedVersion: reportedVersion, deltaSentVersion: deltaSentVersion)
    }

    /// ``ShadowDocument/encoded()`` without parsing.
    var encodedDocument: [UInt8] {
        ShadowDocument.encode(desired: desired, reported: reported, version: version, updatedAt: updatedAt)
    }

    var isUnreported: Bool { version > reportedVersion }

    var hasUndeliveredDelta: Bool { desiredVersion > deltaSentVersion && !deltaIsEmpty }

    private static func object(_ bytes: [UInt8]) -> JSONObject {
        guard case .object(let object)? = try? JSONValue.parse(bytes, maxBytes: .max) else { return JSONObject() }
        return object
    }
}
