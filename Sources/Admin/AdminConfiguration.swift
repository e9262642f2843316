/// Settings of the operator's HTTP surface (`admin.*`, `live.*`). Defaults match `config/gateway.yaml`.
public struct AdminConfiguration: Sendable, Equatable {
    /// Serve the admin API at all (`admin.enabled`).
    public var enabled = true
    /// Address to listen on (`admin.host`); loopback keeps it on the hub.
    public var host = "127.0.0.1"
    /// TCP port (`admin.port`); 0 picks a free one (logged).
    public var port = 8080
    /// When set, every route but `/healthz`, `/readyz` and the status page's empty shell `/` needs
    /// `Authorization: Bearer <token>`; only the WebSocket `/live` also takes `?access_token=<token>`
    /// (a browser cannot set the header there). Required when `host` is not a loopback address.
    public var token: String?
    /// Names and addresses besides the built-in ones (loopback, the host name, `hub.id`, a concrete
    /// `host`) that a request's `Host` and `Origin` may name (`admin.allowedHosts`); any other gets
    /// 421 or 403, so a web page cannot reach the API through DNS rebinding or a cross-site form.
    public var allowedHosts: [String] = []
    /// A connection that has not sent a complete request head, or sits idle between requests, for
    /// this long is closed (`admin.idleTimeoutSeconds`).
    public var idleTimeout = Duration.seconds(30)
    /// Open connections at once, WebSockets included (`admin.maxConnections`); more are closed as
    /// soon as they are accepted.
    public var maxConnections = 64
    /// WebSocket clients of `/live` at once (`live.maxClients`); more are refused.
    public var liveMaxClients = 8
    /// Whether `/live` may carry the audio of dialogs as binary frames (`live.audio`).
    public var liveAudio = false
    /// Messages queued for one live client before it counts as too slow and is closed (`live.queueDepth`).
    public var liveQueueDepth = 256
    /// Devices `/api/devices` remembers; past it the one heard from longest ago is forgotten
    /// (`admin.maxDevicesListed`), so made-up device ids cannot grow memory.
    public var maxDevicesListed = 10_000
    /// The status page counts a device online when it sent anything within this many seconds
    /// (`devices.presenceSeconds`, CONTRACTS.md §5: a device that never announced its presence).
    public var deviceOnlineSeconds = 300

    public init() {}
}
