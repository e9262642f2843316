import DeviceLink
import Foundation
import MQTT

extension MQTTClientConfiguration {
    /// The local (device) broker: `mqtt.*` and `limits.ingressQueue`. A fixed client id with a
    /// persistent session, so the broker queues device messages while the gateway restarts.
    /// `mqtt.unixSocket`, when set, replaces `mqtt.host`/`mqtt.port` for every connection of the
    /// gateway to that broker.
    static func deviceBroker(_ v: inout ConfigValues, hubID: String) -> MQTTClientConfiguration {
        var device = MQTTClientConfiguration(
            host: v.string("mqtt.host", default: "127.0.0.1"),
            port: v.int("mqtt.port", default: 1883, range: 1...65535),
            clientID: v.string("mqtt.clientId", default: "edge-gateway-{hubId}").replacingOccurrences(of: "{hubId}", with: hubID),
            cleanSession: false)
        if let socket = unixSocket(&v) {
            device.addresses = [socket]
        }
        device.username = v.string("mqtt.username", default: "").nonEmpty
        device.password = v.string("mqtt.password", default: "", secret: true).nonEmpty
        device.keepAliveSeconds = v.int("mqtt.keepAliveSeconds", default: device.keepAliveSeconds, range: 5...3600)
        device.reconnectBaseMs = v.int("mqtt.reconnectBaseMs", default: 200, range: 1...600_000)
        device.reconnectCapMs = v.int("mqtt.reconnectCapMs", default: 5000, range: 1...3_600_000)
        device.messageBufferCapacity = v.int("limits.ingressQueue", default: device.messageBufferCapacity, range: 1...1_000_000)
        device.messageBufferBytes = v.int(
            "limits.ingressQueueBytes", default: device.messageBufferBytes, range: 1024...(1024 * 1024 * 1024))
        if device.clientID.isEmpty || device.clientID.utf8.count > 128 {
            v.fail("mqtt.clientId", "must be 1–128 bytes")
        }
        noteContradictions(&v, device, prefix: "mqtt")
        return device
    }

    /// `mqtt.unixSocket`: the device broker's Unix domain socket (an absolute path of at most
    /// 107 bytes), or nil when empty (TCP to `mqtt.host:mqtt.port`). A broker on the same hub
    /// costs both sides less per packet over it than over TCP loopback (BENCHMARKS.md, "The
    /// device broker over a Unix socket").
    private static func unixSocket(_ v: inout ConfigValues) -> MQTTBrokerAddress? {
        let path = v.string("mqtt.unixSocket", default: "")
        guard !path.isEmpty else { return nil }
        let bytes = path.utf8.count
        if !path.hasPrefix("/") {
            v.fail("mqtt.unixSocket", "'\(path)' must be an absolute path")
        } else if bytes > MQTTBrokerAddress.maxUnixSocketPathBytes {
            v.fail("mqtt.unixSocket", "is \(bytes) bytes long; a socket path holds at most \(MQTTBrokerAddress.maxUnixSocketPathBytes)")
        } else if path.utf8.contains(0) {
            v.fail("mqtt.unixSocket", "contains a NUL byte")
        } else {
            // Whoever can create the socket's name can stand in for the broker and be sent the
            // gateway's password (as any local user can on TCP 1883 while mosquitto is down).
            let directory = (path as NSString).deletingLastPathComponent
            if FileCheck.writableByEveryone(directory: directory) {
                v.warn(
                    "mqtt.unixSocket",
                    "'\(directory)' is writable by every user: another local user could put a socket there while the broker is down and be sent the gateway's broker password; use a directory only root and mosquitto may write (systemd/README.md, Operating it)")
            }
            return MQTTBrokerAddress(unixSocket: path)
        }
        return nil
    }

    /// The most addresses `upstream.hosts` may list.
    static let maxUpstreamHosts = 32

    /// The cloud broker: `upstream.host`, `port` (or `hosts`, `hostOrder`), `clientId`, credentials,
    /// keepalive, backoff (`minConnectedSeconds`, `startJitterSeconds`, `quickRetries`), TLS.
    /// `inflight` is the forwarder's window, which libmosquitto's own window follows.
    static func upstreamBroker(_ v: inout ConfigValues, hubID: String, inflight: Int) -> MQTTClientConfiguration {
        let defaultHost = "127.0.0.1"
        var up = MQTTClientConfiguration(
            host: v.string("upstream.host", default: defaultHost),
            port: v.int("upstream.port", default: 1883, range: 1...65535),
            clientID: v.string("upstream.clientId", default: "edge-gateway-{hubId}-upstream")
                .replacingOccurrences(of: "{hubId}", with: hubID),
            cleanSession: true)
        // upstream.hosts, when set, replaces upstream.host (one of the two, not both); an entry
        // without a port uses upstream.port.
        let hosts = upstreamHosts(&v, defaultPort: up.port)
        if !hosts.isEmpty {
            if up.host != defaultHost {
                v.fail("upstream.hosts", "and upstream.host are both set: list every address in upstream.hosts and leave upstream.host unset")
            }
            up.addresses = hosts
        }
        up.addressOrder = v.choice("upstream.hostOrder", default: up.addressOrder)
        up.minConnectedSeconds = Double(v.int("upstream.minConnectedSeconds", default: Int(up.minConnectedSeconds), range: 0...3600))
        up.startJitterSeconds = Double(v.int("upstream.startJitterSeconds", default: Int(up.startJitterSeconds), range: 0...3600))
        up.reportsPublishAcks = true
        up.maxInflightMessages = inflight
        up.username = v.string("upstream.username", default: "").nonEmpty
        up.password = v.string("upstream.password", default: "", secret: true).nonEmpty
        up.keepAliveSeconds = v.int("upstream.keepAliveSeconds", default: up.keepAliveSeconds, range: 5...3600)
        up.connectTimeoutSeconds = Double(v.int("upstream.connectTimeoutSeconds", default: Int(up.connectTimeoutSeconds), range: 1...600))
        up.reconnectBaseMs = v.int("upstream.reconnectBaseMs", default: up.reconnectBaseMs, range: 1...600_000)
        up.reconnectCapMs = v.int("upstream.reconnectCapMs", default: up.reconnectCapMs, range: 1...3_600_000)
        up.quickRetries = v.int("upstream.quickRetries", default: up.quickRetries, range: 0...10)
        up.tls = tls(&v)
        noteContradictions(&v, up, prefix: "upstream")
        return up
    }

    /// `upstream.hosts`: at most ``maxUpstreamHosts`` distinct `host:port` or `[v6]:port` entries.
    private static func upstreamHosts(_ v: inout ConfigValues, defaultPort: Int) -> [MQTTBrokerAddress] {
        let entries = v.stringList("upstream.hosts", default: [])
        if entries.count > maxUpstreamHosts {
            v.fail("upstream.hosts", "lists \(entries.count) addresses; at most \(maxUpstreamHosts)")
            return []
        }
        var addresses: [MQTTBrokerAddress] = []
        for entry in entries {
            switch MQTTBrokerAddress.parse(entry, defaultPort: defaultPort) {
            case .success(let address):
                if addresses.contains(address) {
                    v.fail("upstream.hosts", "'\(entry)': \(address) is listed twice")
                } else {
                    addresses.append(address)
                }
            case .failure(let problem):
                v.fail("upstream.hosts", "\(problem) (expected host:port or [v6]:port)")
            }
        }
        return addresses
    }

    /// Warnings for settings of one connection that the daemon would silently not use.
    private static func noteContradictions(_ v: inout ConfigValues, _ connection: MQTTClientConfiguration, prefix: String) {
        if connection.password != nil, connection.username == nil {
            v.warn("\(prefix).password", "is set but \(prefix).username is empty, so it is not used (the broker sees an anonymous client)")
        }
        if connection.reconnectBaseMs > connection.reconnectCapMs {
            v.warn(
                "\(prefix).reconnectBaseMs",
                "\(connection.reconnectBaseMs) is above \(prefix).reconnectCapMs (\(connection.reconnectCapMs)): every reconnect delay is drawn up to the cap")
        }
    }

    /// `upstream.tls.*`: TLS is on when `caFile` is set; files must be readable now, not at the
    /// first connect an hour later.
    private static func tls(_ v: inout ConfigValues) -> TLS? {
        let caFile = v.string("upstream.tls.caFile", default: "")
        let certFile = v.string("upstream.tls.certFile", default: "")
        let keyFile = v.string("upstream.tls.keyFile", default: "")
        let insecure = v.bool("upstream.tls.insecure", default: false)
        guard !caFile.isEmpty else {
            if !certFile.isEmpty || !keyFile.isEmpty {
                v.fail("upstream.tls.caFile", "set caFile to enable TLS (certFile/keyFile are given)")
            } else if insecure {
                v.warn("upstream.tls.insecure", "has no effect without upstream.tls.caFile (TLS is off)")
            }
            return nil
        }
        if insecure {
            v.warn(
                "upstream.tls.insecure",
                "upstream TLS does not verify the server: its certificate and host name are not checked, so anyone on the path can read and change the events")
        }
        for (key, path) in [("upstream.tls.caFile", caFile), ("upstream.tls.certFile", certFile), ("upstream.tls.keyFile", keyFile)]
        where !path.isEmpty {
            if let problem = FileCheck.readProblem(path) { v.fail(key, "cannot read \(path): \(problem)") }
        }
        if certFile.isEmpty != keyFile.isEmpty {
            v.fail("upstream.tls.certFile", "certFile and keyFile go together (mutual TLS needs both)")
        }
        return TLS(caFile: caFile, certFile: certFile.nonEmpty, keyFile: keyFile.nonEmpty, insecure: insecure)
    }
}
