/// Settings of the operator's HTTP surface (`admin.*`, `live.*`). Defaults match `config/gateway.yaml`.
public struct AdminConfiguration: Sendable, Equatable {
    /// Serve the admin API at all (`admin.enabled`).
    public var enabled = true
    /// Address to listen on (`admin.host`); loopback keeps it on the hub.
    public var host = "127.0.0.1"
    /// TCP port (`admin.port`); 0 picks a free one (logged).
    public var port = 8080
    /// When set, every route but `/healthz` and `/readyz` needs `Authorization: Bearer <token>`
    /// (or `?access_token=<token>`, for the status page and the WebSocket in a browser).
    public var token: String?
    /// WebSocket clients of `/live` at once (`live.maxClients`); more are refused.
    public var liveMaxClients = 8
    /// Whether `/live` may carry the audio of dialogs as binary frames (`live.audio`).
    public var liveAudio = false
    /// Messages queued for one live client before it counts as too slow and is closed (`live.queueDepth`).
    public var liveQueueDepth = 256
    /// Devices `/api/devices` remembers; past it the one heard from longest ago is forgotten
    /// (`admin.maxDevicesListed`), so made-up device ids cannot grow memory.
    public var maxDevicesListed = 10_000

    public init() {}
}
