import Foundation
import MQTT
import Testing

@testable import edge_gateway

/// `mqtt.unixSocket`: empty by default (TCP to `mqtt.host:mqtt.port`); set, every connection of the
/// gateway to the device broker uses that socket; a relative, over-long or NUL-carrying path is one
/// error naming the key.
@Suite struct DeviceBrokerSocketConfigurationTests {
    func load(_ environment: [String: String]) async throws -> GatewayConfiguration {
        try await GatewayConfiguration.load(file: nil, environment: environment)
    }

    @Test func withoutASocketTheDeviceBrokerIsTCPToHostAndPort() async throws {
        let configuration = try await load(["MQTT_HOST": "10.0.0.2", "MQTT_PORT": "1884"])
        #expect(configuration.deviceBroker.addresses == [MQTTBrokerAddress(host: "10.0.0.2", port: 1884)])
        #expect(!configuration.deviceBroker.addresses[0].isUnixSocket)
    }

    @Test func aSocketReplacesHostAndPortForEveryDeviceBrokerConnection() async throws {
        let path = "/var/lib/mosquitto/edge-gateway/mqtt.sock"
        let configuration = try await load([
            "MQTT_UNIX_SOCKET": path, "MQTT_PORT": "1884", "MQTT_USERNAME": "edge-gateway", "MQTT_PASSWORD": "secret",
            "MQTT_ACCOUNT_PER_CONNECTION": "true",
        ])
        let socket = MQTTBrokerAddress(unixSocket: path)
        #expect(socket.isUnixSocket && socket.port == 0 && socket.description == "unix:\(path)")
        #expect(configuration.deviceBroker.addresses == [socket])
        for connection in [configuration.dialogBroker, configuration.registrationBroker, configuration.dynsecBroker, configuration.microphoneBroker, configuration.commandsBroker] {
            #expect(connection.addresses == [socket], "\(connection.clientID)")
        }
        let effective = Dictionary(configuration.effective.map { ($0.key, $0.value) }) { $1 }
        #expect(effective["mqtt.unixSocket"] == path)
    }

    @Test func theSocketComesFromYAMLToo() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("edge-gateway-socket-\(UUID().uuidString).yaml")
        try "mqtt:\n  unixSocket: /run/broker.sock\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let configuration = try await GatewayConfiguration.load(file: file.path, environment: [:])
        #expect(configuration.deviceBroker.addresses == [MQTTBrokerAddress(unixSocket: "/run/broker.sock")])
    }

    @Test(arguments: [
        ("mqtt.sock", "must be an absolute path"),
        ("/" + String(repeating: "s", count: 107), "is 108 bytes long; a socket path holds at most 107"),
        ("/run/a\u{0}b", "contains a NUL byte"),
    ])
    func aBadPathIsOneErrorNamingTheKey(path: String, message: String) async {
        do {
            _ = try await load(["MQTT_UNIX_SOCKET": path])
            Issue.record("accepted \(path)")
        } catch let errors as ConfigurationErrors {
            #expect(errors.errors.count == 1)
            #expect(errors.description.contains("mqtt.unixSocket"))
            #expect(errors.description.contains(message), "\(errors.description)")
        } catch {
            Issue.record("\(error)")
        }
    }

    /// Whoever can make the socket's name can play the broker: a directory every user may write to
    /// is named in a warning (the socket is still used), one only its owner may write to is not.
    @Test func aSocketInADirectoryEveryoneMayWriteIsWarnedAbout() async throws {
        let open = FileManager.default.temporaryDirectory.appendingPathComponent("eg-open-\(UUID().uuidString.prefix(8))")
        let closed = FileManager.default.temporaryDirectory.appendingPathComponent("eg-closed-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: open, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o1777])
        try FileManager.default.createDirectory(at: closed, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o2750])
        defer {
            try? FileManager.default.removeItem(at: open)
            try? FileManager.default.removeItem(at: closed)
        }
        let warned = try await load(["MQTT_UNIX_SOCKET": open.appendingPathComponent("mqtt.sock").path])
        #expect(warned.warnings.map(\.key) == ["mqtt.unixSocket"], "\(warned.warnings)")
        #expect(warned.warnings.first.map { "\($0)" }?.contains("writable by every user") == true, "\(warned.warnings)")
        #expect(warned.deviceBroker.addresses == [MQTTBrokerAddress(unixSocket: open.appendingPathComponent("mqtt.sock").path)])
        let quiet = try await load(["MQTT_UNIX_SOCKET": closed.appendingPathComponent("mqtt.sock").path])
        #expect(quiet.warnings.isEmpty, "\(quiet.warnings)")
    }

    @Test func aPathOf107BytesIsAccepted() async throws {
        let path = "/" + String(repeating: "s", count: 106)
        let configuration = try await load(["MQTT_UNIX_SOCKET": path])
        #expect(configuration.deviceBroker.addresses == [MQTTBrokerAddress(unixSocket: path)])
    }
}
