import Foundation

/// The dynamic-security plugin for a test broker: `mosquitto_ctrl dynsec init` makes the admin
/// identity. For the integration tests' device broker (`prepare(in:)`) anonymous clients (the
/// daemon's own connections, recorders, `mosquitto_pub`) get a role allowing everything, so only the
/// accounts the daemon creates are restricted.
public enum DynamicSecurity {
    public static let plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    /// The admin account `prepare(in:)` makes.
    public static let adminUser = "gateway-admin"
    public static let adminPassword = "admin-secret-1"

    /// How a broker's plugin state starts.
    public struct Setup: Sendable {
        public var adminUser: String
        public var adminPassword: String
        /// Whether clients without a username get a role allowing everything (an `anonymousGroup`).
        public var anonymousMayDoEverything: Bool

        public init(adminUser: String, adminPassword: String, anonymousMayDoEverything: Bool) {
            self.adminUser = adminUser
            self.adminPassword = adminPassword
            self.anonymousMayDoEverything = anonymousMayDoEverything
        }
    }

    /// Writes the plugin's file into `directory` (admin `adminUser`/`adminPassword`, anonymous
    /// clients allowed everything); returns the broker config lines that load it.
    public static func prepare(in directory: URL) async throws -> [String] {
        let file = directory.appendingPathComponent("dynamic-security.json")
        try await initialise(
            file: file, Setup(adminUser: adminUser, adminPassword: adminPassword, anonymousMayDoEverything: true))
        return configLines(file: file)
    }

    /// The broker config lines that load the plugin with `file`.
    public static func configLines(file: URL) -> [String] {
        ["plugin \(plugin)", "plugin_opt_config_file \(file.path)"]
    }

    /// Makes the plugin's state file.
    public static func initialise(file: URL, _ setup: Setup) async throws {
        let directory = file.deletingLastPathComponent()
        try await Tool.run(
            "/usr/bin/mosquitto_ctrl", ["dynsec", "init", file.path, setup.adminUser, setup.adminPassword], in: directory)
        guard setup.anonymousMayDoEverything else { return }
        guard var json = (try? JSONSerialization.jsonObject(with: try Data(contentsOf: file))) as? [String: Any] else {
            throw HarnessError("unreadable \(file.path)")
        }
        var roles = json["roles"] as? [[String: Any]] ?? []
        roles.append([
            "rolename": "everything",
            "acls": ["publishClientSend", "publishClientReceive", "subscribePattern", "unsubscribePattern"].map {
                ["acltype": $0, "topic": "#", "allow": true, "priority": 0] as [String: Any]
            },
        ])
        json["roles"] = roles
        var groups = json["groups"] as? [[String: Any]] ?? []
        groups.append(["groupname": "anonymous", "roles": [["rolename": "everything", "priority": 0]], "clients": []])
        json["groups"] = groups
        json["anonymousGroup"] = "anonymous"
        try JSONSerialization.data(withJSONObject: json).write(to: file)
    }
}
