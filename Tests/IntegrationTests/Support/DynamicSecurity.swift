import Foundation

/// The dynamic-security plugin for a test device broker: `mosquitto_ctrl dynsec init` makes the
/// admin identity; anonymous clients (the daemon's own connections, recorders, `mosquitto_pub`)
/// get a role allowing everything, so only the accounts the daemon creates are restricted.
enum DynamicSecurity {
    static let plugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
    static let adminUser = "gateway-admin"
    static let adminPassword = "admin-secret-1"

    /// Writes the plugin's file into `directory`; returns the broker config lines that load it.
    static func prepare(in directory: URL) async throws -> [String] {
        let file = directory.appendingPathComponent("dynamic-security.json")
        try await Tool.run("/usr/bin/mosquitto_ctrl", ["dynsec", "init", file.path, adminUser, adminPassword], in: directory)
        guard var json = JSON.object(try Data(contentsOf: file)) else { throw HarnessError("unreadable \(file.path)") }
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
        return ["plugin \(plugin)", "plugin_opt_config_file \(file.path)"]
    }
}
