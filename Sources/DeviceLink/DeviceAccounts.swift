import GatewayCore

/// The broker accounts of devices, as the registration needs them (``BrokerAccounts`` is the
/// device broker's; a test may bring its own).
public protocol DeviceAccounts: Sendable {
    /// Whether commands can be sent and their answers heard now.
    var isReady: Bool { get }
    /// The broker account named `username`; nil when there is none.
    func account(_ username: String) async throws(BrokerAccountError) -> BrokerAccounts.Account?
    /// Creates the account of `device` for the registration `requestID` (bound to client id =
    /// device id, only the device's own topics); an account someone else made is never changed.
    func createAccount(for device: DeviceID, password: String, requestID: String) async throws(BrokerAccountError)
    /// Removes the account of `device` when the registration `requestID` made it.
    func removeAccount(for device: DeviceID, requestID: String) async throws(BrokerAccountError)
}

extension BrokerAccounts: DeviceAccounts {}
