import GatewayCore

/// What a device is told about its registration: the `REGISTRATION_RESULT` payload
/// `{"requestId", "status", "username", "password", "registryId" | "reason"}` (README "Device
/// registration"), also the body of the admin API's `POST /api/devices` answer.
public struct RegistrationResult: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable {
        case registered, failed, rejected, pending
    }

    /// Reasons of `rejected` answers (README "Device registration").
    public static let reservedID = "reserved device id"
    public static let requestIDReused = RegistrationSaga.requestIDReused
    public static let rateLimited = "rate limited"
    public static let busy = "busy"
    public static let alreadyRegistered = "already registered"
    /// The reason of a `registered` answer to a repeat that came after the password was wiped.
    public static let credentialsNotKept = "credentials no longer kept"

    public var requestId: String?
    public var status: Status
    /// The device's own broker username (its id) and password, when registered.
    public var username: String?
    public var password: String?
    public var registryId: String?
    public var reason: String?

    public init(
        requestId: String?, status: Status, username: String? = nil, password: String? = nil, registryId: String? = nil,
        reason: String? = nil
    ) {
        self.requestId = requestId
        self.status = status
        self.username = username
        self.password = password
        self.registryId = registryId
        self.reason = reason
    }

    /// The message on `device/{id}/response`.
    public func response(device: DeviceID) -> DeviceResponse {
        var payload = JSONText(capacity: 256)
        payload.field("requestId", string: requestId)
        payload.field("status", string: status.rawValue)
        if status == .registered {
            payload.field("username", string: username ?? device.rawValue)
            // Absent once wiped (`registration.passwordRetentionSeconds`); `reason` then says so.
            if let password { payload.field("password", string: password) }
            payload.field("registryId", string: registryId)
        }
        if let reason { payload.field("reason", string: reason) }
        return DeviceResponse(device: device, kind: .registrationResult, payload: payload.finish())
    }
}
