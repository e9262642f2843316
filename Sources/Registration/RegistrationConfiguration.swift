/// Device registration (`registration.*`): off unless enabled; it needs the gateway's admin
/// identity on the local broker (dynamic-security plugin) and the three REST services.
public struct RegistrationConfiguration: Sendable, Equatable {
    public var enabled = false
    public var adminUsername: String?
    public var adminPassword: String?
    /// User service (quota, add/remove device): `users.baseUrl`.
    public var usersURL: String?
    public var registryURL: String?
    public var billingURL: String?
    /// Deadline of one REST call.
    public var timeout: Duration = .seconds(3)
    public var saga = RegistrationSaga.Configuration()
    /// SQLite file of the sagas and the local registry.
    public var statePath: String

    public init(statePath: String) {
        self.statePath = statePath
    }
}
