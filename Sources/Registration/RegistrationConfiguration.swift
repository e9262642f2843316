/// Device registration (`registration.*`): off unless enabled; it needs the gateway's admin
/// identity on the local broker (dynamic-security plugin) and the three REST services.
public struct RegistrationConfiguration: Sendable, Equatable {
    /// The identities `scripts/packaging/setup-broker` installs on the broker: never device ids.
    public static let installedIdentities: Set<String> = ["edge-provisioning", "edge-gateway"]

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
    /// Ids no device may register (`registration.reservedIds`, plus `hub.id`, the gateway's own
    /// broker usernames and client ids and ``installedIdentities``, added when the configuration
    /// is read). Besides these, any broker account the local registry did not create is refused.
    public var reservedIDs: Set<String> = installedIdentities
    /// How long a finished saga keeps the device's password for a repeated request
    /// (`registration.passwordRetentionSeconds`).
    public var passwordRetention: Duration = .seconds(600)
    /// How long finished (completed or failed) saga records are kept
    /// (`registration.recordRetentionSeconds`); `needs-attention` ones are kept until seen to.
    public var recordRetention: Duration = .seconds(7 * 24 * 3600)
    /// Requests one device may make a minute (`registration.maxRequestsPerDevicePerMinute`).
    public var maxRequestsPerDevicePerMinute = 6
    /// Requests the hub takes a minute from all devices and the admin API
    /// (`registration.maxRequestsPerMinute`).
    public var maxRequestsPerMinute = 60
    /// Sagas of different devices running at once (`registration.maxConcurrent`).
    public var maxConcurrent = 4
    /// Requests waiting for their turn; one more is rejected `busy` (`registration.queueLimit`).
    public var queueLimit = 256

    public init(statePath: String) {
        self.statePath = statePath
    }
}
