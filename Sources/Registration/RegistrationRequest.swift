import GatewayCore
import REST

/// A device registration as the device asks for it (CONTRACTS.md §1, `device/{id}/register`).
public struct RegistrationRequest: Sendable, Equatable {
    public var requestID: String
    public var device: DeviceID
    public var userID: String
    public var type: String
    public var premium: Bool

    public init(requestID: String, device: DeviceID, userID: String, type: String, premium: Bool) {
        self.requestID = requestID
        self.device = device
        self.userID = userID
        self.type = type
        self.premium = premium
    }
}

/// The steps of a registration, in order. Each step that changes something outside the saga has
/// a compensation; they run in reverse order when a later step fails.
public enum RegistrationStep: String, Sendable, CaseIterable, Comparable {
    /// The user's device quota (user service). Changes nothing.
    case checkQuota
    /// The device in the local registry (SQLite). Compensation: delete the record.
    case recordLocally
    /// The device's own broker account. Compensation: delete the broker client.
    case createBrokerAccount
    /// The device registry service. Compensation: unregister upstream.
    case registerUpstream
    /// The device added to the user (user service). Compensation: remove it from the user.
    case addToUser
    /// The billing charge, for premium devices only. Compensation: delete the charge.
    case addBillingCharge

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// Whether this step has a compensation.
    public var isCompensable: Bool { self != .checkQuota }
}

/// Why a step failed: `.refused` (the request cannot succeed: compensate, do not retry) or
/// `.unavailable` (a service could not be reached or failed). The REST services' own error.
public typealias StepError = ServiceError

/// What the saga needs from the world; each call carries the request id so the services can make
/// it idempotent, and each is safe to repeat (a resumed step may run twice).
public protocol RegistrationEffects: Sendable {
    func checkQuota(_ request: RegistrationRequest) async throws(StepError)
    func recordLocally(_ request: RegistrationRequest) async throws(StepError)
    func deleteLocalRecord(_ request: RegistrationRequest) async throws(StepError)
    func createBrokerAccount(_ request: RegistrationRequest, password: String) async throws(StepError)
    func deleteBrokerAccount(_ request: RegistrationRequest) async throws(StepError)
    /// Returns the registry's id for the device.
    func registerUpstream(_ request: RegistrationRequest) async throws(StepError) -> String
    func unregisterUpstream(_ request: RegistrationRequest, registryID: String?) async throws(StepError)
    func addToUser(_ request: RegistrationRequest) async throws(StepError)
    func removeFromUser(_ request: RegistrationRequest) async throws(StepError)
    func addBillingCharge(_ request: RegistrationRequest) async throws(StepError)
    func deleteBillingCharge(_ request: RegistrationRequest) async throws(StepError)
}
