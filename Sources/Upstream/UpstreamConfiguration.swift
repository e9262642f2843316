import GatewayCore

/// Settings of the forwarder. Defaults match `config/gateway.yaml`.
public struct UpstreamConfiguration: Sendable {
    public var hubID: String
    /// Where each event is published; `{hubId}` and `{deviceId}` are replaced.
    public var topic: UpstreamTopicTemplate = UpstreamTopicTemplate("hubs/{hubId}/events/{deviceId}")
    /// QoS 1 publishes awaiting PUBACK at once.
    public var inflight: Int = 500
    /// On shutdown, how long in-flight publishes may take to be acknowledged.
    public var shutdownGrace: Duration = .seconds(5)

    public init(hubID: String) {
        self.hubID = hubID
    }
}
