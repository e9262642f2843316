import DeviceLink
import Foundation
import GatewayCore
import REST

/// The saga's effects on the real world: the user, registry and billing services (REST,
/// CONTRACTS.md §4), the local registry and the broker accounts. Each is safe to repeat: creates
/// carry the request id (`Idempotency-Key`), deletes of what is gone (404) succeed.
public struct ServiceEffects: RegistrationEffects {
    public let users: ServiceClient
    public let registry: ServiceClient
    public let billing: ServiceClient
    public let local: LocalRegistry
    public let accounts: any DeviceAccounts

    public init(users: ServiceClient, registry: ServiceClient, billing: ServiceClient, local: LocalRegistry, accounts: any DeviceAccounts) {
        self.users = users
        self.registry = registry
        self.billing = billing
        self.local = local
        self.accounts = accounts
    }

    private func userPath(_ request: RegistrationRequest) -> String { "/api/users/\(ServiceClient.segment(request.userID))" }

    public func checkQuota(_ request: RegistrationRequest) async throws(StepError) {
        let response = try await users.call(.GET, userPath(request))
        guard response.status != 404 else { throw StepError(.refused, "user \(request.userID) does not exist") }
        guard let user = response.json else { throw StepError(.unavailable, "the user service answered an unreadable user record") }
        if user["blocked"] as? Bool == true { throw StepError(.refused, "user \(request.userID) is blocked") }
        let quota = user["deviceQuota"] as? Int ?? 0
        let count = user["deviceCount"] as? Int ?? 0
        guard count < quota else { throw StepError(.refused, "device quota exceeded: user \(request.userID) has \(count) of \(quota) devices") }
    }

    public func recordLocally(_ request: RegistrationRequest) async throws(StepError) { try await local.record(request) }

    public func deleteLocalRecord(_ request: RegistrationRequest) async throws(StepError) { try await local.delete(request) }

    public func createBrokerAccount(_ request: RegistrationRequest, password: String) async throws(StepError) {
        do {
            try await accounts.createAccount(for: request.device, password: password, requestID: request.requestID)
        } catch {
            throw StepError(error.isRetriable ? .unavailable : .refused, error.description)
        }
    }

    public func deleteBrokerAccount(_ request: RegistrationRequest) async throws(StepError) {
        do {
            try await accounts.removeAccount(for: request.device, requestID: request.requestID)
        } catch {
            throw StepError(.unavailable, error.description)
        }
    }

    public func registerUpstream(_ request: RegistrationRequest) async throws(StepError) -> String {
        let response = try await registry.call(
            .POST, "/api/devices", json: ["deviceId": request.device.rawValue, "userId": request.userID, "type": request.type],
            requestID: request.requestID)
        guard response.status != 404 else { throw StepError(.unavailable, "the device registry has no /api/devices (404)") }
        guard let id = response.json?["id"].map({ "\($0)" }) else { throw StepError(.unavailable, "the device registry answered no id") }
        return id
    }

    public func unregisterUpstream(_ request: RegistrationRequest, registryID: String?) async throws(StepError) {
        // Without the registry's id (the create timed out), the device id is what was sent.
        _ = try await registry.call(.DELETE, "/api/devices/\(ServiceClient.segment(registryID ?? request.device.rawValue))", requestID: request.requestID)
    }

    public func addToUser(_ request: RegistrationRequest) async throws(StepError) {
        let response = try await users.call(
            .POST, userPath(request) + "/devices", json: ["deviceId": request.device.rawValue, "type": request.type], requestID: request.requestID)
        guard response.status != 404 else { throw StepError(.refused, "user \(request.userID) does not exist") }
    }

    public func removeFromUser(_ request: RegistrationRequest) async throws(StepError) {
        _ = try await users.call(.DELETE, userPath(request) + "/devices/\(ServiceClient.segment(request.device.rawValue))", requestID: request.requestID)
    }

    public func addBillingCharge(_ request: RegistrationRequest) async throws(StepError) {
        let response = try await billing.call(
            .POST, "/api/billing/\(ServiceClient.segment(request.userID))/devices", json: ["type": request.type], requestID: request.requestID)
        guard response.status != 404 else { throw StepError(.refused, "billing has no account for user \(request.userID)") }
    }

    public func deleteBillingCharge(_ request: RegistrationRequest) async throws(StepError) {
        _ = try await billing.call(
            .DELETE, "/api/billing/\(ServiceClient.segment(request.userID))/devices/\(ServiceClient.segment(request.type))",
            requestID: request.requestID)
    }
}
