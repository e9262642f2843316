/// Everything an ``MQTTClient`` needs to connect and stay connected.
public struct MQTTClientConfiguration: Sendable, Equatable {
    public struct TLS: Sendable, Equatable {
        /// CA certificate (PEM) the server certificate must chain to.
        public var caFile: String
        /// Client certificate and key for mutual TLS; both or neither.
        public var certFile: String?
        public var keyFile: String?
        /// Skip verifying the server: neither its certificate chain nor its host name is checked
        /// (`upstream.tls.insecure`; for a test bench only, and warned about at start).
        public var insecure: Bool

        public init(caFile: String, certFile: String? = nil, keyFile: String? = nil, insecure: Bool = false) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
            self.insecure = insecure
        }
    }

    /// Every address of the broker (the nodes of a cluster), never empty; the client connects to one
    /// at a time and moves to the next after a failed connect or a lost connection. Same client id,
    /// credentials and TLS for all.
    public var addresses: [MQTTBrokerAddress] {
        didSet { precondition(!addresses.isEmpty, "an MQTT client needs at least one broker address") }
    }
    /// Where in ``addresses`` the client starts.
    public var addressOrder: MQTTAddressOrder = .ordered
    /// The first address's host (the one-address form).
    public var host: String {
        get { addresses[0].host }
        set { addresses[0].host = newValue }
    }
    /// The first address's port (the one-address form).
    public var port: Int {
        get { addresses[0].port }
        set { addresses[0].port = newValue }
    }
    public var clientID: String
    /// `false` keeps a persistent session: the broker queues QoS 1 messages while we are away.
    public var cleanSession: Bool
    public var username: String?
    public var password: String?
    public var keepAliveSeconds: Int = 30
    public var tls: TLS?
    /// Topics (QoS 1) subscribed after every successful connect; a refused one drops the connection
    /// (the gateway must not look healthy while it misses messages).
    public var subscriptions: [String] = []
    /// Topics subscribed too, but a broker that refuses one (an older installation's ACLs) costs only
    /// that topic: a warning per connection, and the connection goes on.
    public var optionalSubscriptions: [String] = []
    /// A CONNACK that does not arrive within this time counts as a failed connect.
    public var connectTimeoutSeconds: Double = 10
    /// Reconnect delay: random in `0 ... min(cap, base * 2^attempt)` (exponential backoff, full jitter).
    public var reconnectBaseMs: Int = 500
    public var reconnectCapMs: Int = 30_000
    /// Retries at the start of every streak (also the failover after a link that held
    /// ``minConnectedSeconds``) that wait at most 250 ms instead of the full-jitter backoff.
    public var quickRetries: Int = 2
    /// The backoff streak starts over only after a connection held this long (from CONNACK); one
    /// that drops sooner counts as a failure, so a flapping broker cannot pull a fleet into a tight loop.
    public var minConnectedSeconds: Double = 10
    /// The first connect waits a random time in `0 ... startJitterSeconds` (0: none), so hubs
    /// powered on together do not connect together.
    public var startJitterSeconds: Double = 0
    /// Messages buffered between the network thread and the consumer; when full the network
    /// thread waits, and backpressure reaches the broker through TCP.
    public var messageBufferCapacity: Int = 4096
    /// The same bound in payload bytes, so large messages cannot add up to an out-of-memory kill.
    public var messageBufferBytes: Int = 8 * 1024 * 1024
    /// QoS 1 publishes libmosquitto keeps unacknowledged on the wire; more wait in its queue.
    /// libmosquitto 2.0 scans its outgoing list on every publish while it has quota left, so a
    /// bounded window keeps each publish and PUBACK O(window) instead of O(queue).
    public var maxInflightMessages: Int = 100
    /// Whether ``MQTTEvent/published(_:)`` events are emitted for PUBACKs of our own publishes.
    public var reportsPublishAcks: Bool = false

    public init(host: String, port: Int, clientID: String, cleanSession: Bool) {
        self.addresses = [MQTTBrokerAddress(host: host, port: port)]
        self.clientID = clientID
        self.cleanSession = cleanSession
    }
}
