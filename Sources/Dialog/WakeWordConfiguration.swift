/// What opens a segment of the hub microphone (`audio.wake.mode`).
public enum WakeMode: String, Sendable, Equatable, CaseIterable {
    /// Voice-activity detection alone (and push-to-talk): the behaviour without a wake-word server.
    case vad
    /// Only a wake-word `detection` (and push-to-talk); speech without the wake word opens nothing.
    case wake
    /// A detection or the voice-activity detector's speech start, whichever comes first.
    case both
}

/// A Wyoming wake-word server in front of the hub microphone (`audio.wake.*`). Defaults match
/// `config/gateway.yaml`.
public struct WakeWordConfiguration: Sendable, Equatable {
    /// The server (`audio.wake.endpoint: wyoming://host:port`); nil: none.
    public var host: String?
    public var port = 10400
    /// The wake words asked for in `detect` (`audio.wake.names`); empty: the server's defaults.
    public var names: [String] = []
    /// What opens a segment (`audio.wake.mode`); default `wake` with an endpoint, `vad` without.
    public var mode = WakeMode.vad
    /// Audio held for a server that falls behind before the oldest is dropped, in ms
    /// (`audio.wake.bufferMs`).
    public var bufferMs = 2000

    /// `host:port`, or nil without a server.
    public var address: String? { host.map { "\($0):\(port)" } }

    public init() {}

    /// `wyoming://host:port` (an IPv6 host in brackets) → host and port; nil when it is not one.
    public static func parseEndpoint(_ text: String) -> (host: String, port: Int)? {
        WyomingServerAddress(url: text).map { ($0.host, $0.port) }
    }
}
