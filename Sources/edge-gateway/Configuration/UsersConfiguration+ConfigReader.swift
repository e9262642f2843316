import Foundation
import Users

extension UsersConfiguration {
    /// `users.*`. An empty `users.cachePath` puts `users.db` beside the outbox.
    init(_ v: inout ConfigValues, storePath: String) {
        var cachePath = v.string("users.cachePath", default: "")
        if cachePath.isEmpty {
            cachePath = ((storePath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("users.db")
            v.resolve("users.cachePath", to: cachePath, "empty: users.db beside the outbox")
        }
        self.init(cachePath: cachePath)
        let base = v.string("users.baseUrl", default: "")
        if !base.isEmpty {
            if let url = URL(string: base), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil {
                baseURL = base.hasSuffix("/") ? String(base.dropLast()) : base
            } else {
                v.fail("users.baseUrl", "'\(base)' is not an http:// or https:// URL")
            }
        }
        timeout = .milliseconds(v.int("users.timeoutMs", default: 1500, range: 10...600_000))
        unknownUserPolicy = v.choice("users.unknownUserPolicy", default: unknownUserPolicy)
        cacheMaxEntries = v.int("users.cacheMaxEntries", default: cacheMaxEntries, range: 1...10_000_000)
    }
}
