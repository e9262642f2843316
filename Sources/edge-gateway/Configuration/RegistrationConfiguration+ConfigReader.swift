import Foundation
import Registration
import Users

extension RegistrationConfiguration {
    /// `registration.*`. An empty `registration.statePath` puts `registrations.db` beside the outbox.
    init(_ v: inout ConfigValues, storePath: String, users: UsersConfiguration) {
        var path = v.string("registration.statePath", default: "")
        if path.isEmpty {
            path = ((storePath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("registrations.db")
            v.resolve("registration.statePath", to: path, "empty: registrations.db beside the outbox")
        }
        self.init(statePath: path)
        enabled = v.bool("registration.enabled", default: false)
        adminUsername = v.string("registration.adminUsername", default: "").nonEmpty
        adminPassword = v.string("registration.adminPassword", default: "", secret: true).nonEmpty
        usersURL = users.baseURL
        registryURL = v.string("registration.registryUrl", default: "").nonEmpty
        billingURL = v.string("registration.billingUrl", default: "").nonEmpty
        timeout = .milliseconds(v.int("registration.timeoutMs", default: 3000, range: 10...600_000))
        saga.compensationAttempts = v.int("registration.compensationAttempts", default: 8, range: 1...1000)
        saga.compensationBackoff = .milliseconds(v.int("registration.compensationBackoffMs", default: 1000, range: 1...3_600_000))
        let reserved = v.stringList("registration.reservedIds", default: [])
        for id in reserved where id.isEmpty || id.count > 64 {
            v.fail("registration.reservedIds", "'\(id)' is not a device id (1–64 characters)")
        }
        reservedIDs.formUnion(reserved)
        passwordRetention = .seconds(v.int("registration.passwordRetentionSeconds", default: 600, range: 1...31_536_000))
        recordRetention = .seconds(v.int("registration.recordRetentionSeconds", default: 604_800, range: 1...315_360_000))
        maxRequestsPerDevicePerMinute = v.int("registration.maxRequestsPerDevicePerMinute", default: 6, range: 1...10_000)
        maxRequestsPerMinute = v.int("registration.maxRequestsPerMinute", default: 60, range: 1...100_000)
        maxConcurrent = v.int("registration.maxConcurrent", default: 4, range: 1...256)
        queueLimit = v.int("registration.queueLimit", default: 256, range: 0...100_000)
        for (key, url) in [("registration.registryUrl", registryURL), ("registration.billingUrl", billingURL)] {
            if let url, URL(string: url)?.host == nil || !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
                v.fail(key, "'\(url)' is not an http:// or https:// URL")
            }
        }
        if enabled {
            if adminUsername == nil { v.fail("registration.adminUsername", "required when registration.enabled is true") }
            if usersURL == nil { v.fail("users.baseUrl", "required when registration.enabled is true (device quotas)") }
            if registryURL == nil { v.fail("registration.registryUrl", "required when registration.enabled is true") }
            if billingURL == nil { v.fail("registration.billingUrl", "required when registration.enabled is true") }
        }
    }
}
