import Admin

extension AdminConfiguration {
    /// `admin.*` and `live.*`.
    init(_ v: inout ConfigValues) {
        self.init()
        enabled = v.bool("admin.enabled", default: enabled)
        host = v.string("admin.host", default: host)
        port = v.int("admin.port", default: port, range: 0...65535)
        token = v.string("admin.token", default: "", secret: true).nonEmpty
        allowedHosts = v.stringList("admin.allowedHosts", default: allowedHosts)
        idleTimeout = .seconds(v.int("admin.idleTimeoutSeconds", default: 30, range: 1...3600))
        maxConnections = v.int("admin.maxConnections", default: maxConnections, range: 1...10_000)
        maxDevicesListed = v.int("admin.maxDevicesListed", default: maxDevicesListed, range: 1...10_000_000)
        deviceOnlineSeconds = v.int("devices.presenceSeconds", default: deviceOnlineSeconds, range: 1...86_400 * 365)
        liveMaxClients = v.int("live.maxClients", default: liveMaxClients, range: 0...1000)
        liveAudio = v.bool("live.audio", default: liveAudio)
        liveQueueDepth = v.int("live.queueDepth", default: liveQueueDepth, range: 1...100_000)
        if host.isEmpty { v.fail("admin.host", "must not be empty (127.0.0.1 keeps the admin API on this machine)") }
        // Beyond loopback, anyone on the LAN could use the API; an installed hub has a token in
        // secrets.env (ADMIN_TOKEN).
        if enabled, token == nil, !host.isEmpty, !HostPolicy.isLoopback(host) {
            v.fail("admin.token", "required when admin.host is not a loopback address")
        }
    }
}
