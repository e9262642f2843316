import Foundation
import MQTT
import Testing

@testable import edge_gateway

/// `upstream.hosts`, `hostOrder`, `minConnectedSeconds`, `startJitterSeconds`: read from the
/// environment (the list comma-separated) and from YAML (a sequence), with errors naming the key and
/// the entry.
@Suite struct UpstreamHostsConfigurationTests {
    func load(_ environment: [String: String]) async throws -> GatewayConfiguration {
        try await GatewayConfiguration.load(file: nil, environment: environment)
    }

    func problems(_ environment: [String: String]) async -> String? {
        do {
            _ = try await load(environment)
            return nil
        } catch let errors as ConfigurationErrors {
            return errors.description
        } catch {
            return "\(error)"
        }
    }

    @Test func withoutHostsTheOneAddressIsUpstreamHostAndPort() async throws {
        let configuration = try await load(["UPSTREAM_HOST": "cloud.example", "UPSTREAM_PORT": "8883"])
        #expect(configuration.upstreamBroker.addresses == [MQTTBrokerAddress(host: "cloud.example", port: 8883)])
        #expect(configuration.upstreamBroker.addressOrder == .ordered)
        #expect(configuration.upstreamBroker.minConnectedSeconds == 10)
        #expect(configuration.upstreamBroker.startJitterSeconds == 0)
        #expect(configuration.upstreamBroker.quickRetries == 2)
    }

    /// `upstream.quickRetries`: both ends of 0...10 are accepted and reach the client configuration.
    @Test(arguments: [0, 10])
    func quickRetriesAcceptsItsBounds(value: Int) async throws {
        let configuration = try await load(["UPSTREAM_QUICK_RETRIES": "\(value)"])
        #expect(configuration.upstreamBroker.quickRetries == value)
        let effective = Dictionary(configuration.effective.map { ($0.key, $0.value) }) { $1 }
        #expect(effective["upstream.quickRetries"] == "\(value)")
    }

    @Test func hostsFromTheEnvironmentAreCommaSeparatedAndAMissingPortIsUpstreamPort() async throws {
        let configuration = try await load([
            "UPSTREAM_HOSTS": "127.0.0.1:4001, node-2 ,[::1]:4003", "UPSTREAM_PORT": "1884", "UPSTREAM_HOST_ORDER": "random",
            "UPSTREAM_MIN_CONNECTED_SECONDS": "30", "UPSTREAM_START_JITTER_SECONDS": "120",
        ])
        let broker = configuration.upstreamBroker
        #expect(broker.addresses == [
            MQTTBrokerAddress(host: "127.0.0.1", port: 4001), MQTTBrokerAddress(host: "node-2", port: 1884),
            MQTTBrokerAddress(host: "::1", port: 4003),
        ])
        #expect(broker.host == "127.0.0.1" && broker.port == 4001)
        #expect(broker.addressOrder == .random)
        #expect(broker.minConnectedSeconds == 30)
        #expect(broker.startJitterSeconds == 120)
        // check-config prints them.
        let effective = Dictionary(configuration.effective.map { ($0.key, $0.value) }) { $1 }
        #expect(effective["upstream.hosts"] == "[127.0.0.1:4001, node-2, [::1]:4003]")
        #expect(effective["upstream.hostOrder"] == "random")
        #expect(effective["upstream.minConnectedSeconds"] == "30")
        #expect(effective["upstream.startJitterSeconds"] == "120")
    }

    @Test func hostsFromYAMLAreASequence() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("edge-gateway-hosts-\(UUID().uuidString).yaml")
        try """
            upstream:
              hosts:
                - 127.0.0.1:4001
                - "[::1]:4002"
              hostOrder: ordered

            """.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let configuration = try await GatewayConfiguration.load(file: file.path, environment: [:])
        #expect(configuration.upstreamBroker.addresses == [
            MQTTBrokerAddress(host: "127.0.0.1", port: 4001), MQTTBrokerAddress(host: "::1", port: 4002),
        ])
    }

    static let thirtyThree: String = (1...33).map { (index: Int) -> String in "n\(index):1883" }.joined(separator: ",")

    @Test(arguments: [
        (["UPSTREAM_HOSTS": "a:1,b:70000"], "upstream.hosts (from environment variable UPSTREAM_HOSTS): 'b:70000': the port must be a number in 1...65535"),
        (["UPSTREAM_HOSTS": "a:1,::1"], "upstream.hosts (from environment variable UPSTREAM_HOSTS): '::1': write an IPv6 address in brackets"),
        (["UPSTREAM_HOSTS": "a:1,a:1"], "upstream.hosts (from environment variable UPSTREAM_HOSTS): 'a:1': a:1 is listed twice"),
        (["UPSTREAM_HOSTS": "a b:1"], "upstream.hosts (from environment variable UPSTREAM_HOSTS): 'a b:1': 'a b' is not a host name"),
        (["UPSTREAM_HOSTS": "a:1", "UPSTREAM_HOST": "cloud.example"], "upstream.hosts (from environment variable UPSTREAM_HOSTS): and upstream.host are both set"),
        (["UPSTREAM_HOSTS": thirtyThree], "upstream.hosts (from environment variable UPSTREAM_HOSTS): lists 33 addresses; at most 32"),
        (["UPSTREAM_HOST_ORDER": "roundRobin"], "upstream.hostOrder (from environment variable UPSTREAM_HOST_ORDER): 'roundRobin' is not one of: ordered, random"),
        (["UPSTREAM_MIN_CONNECTED_SECONDS": "3601"], "upstream.minConnectedSeconds (from environment variable UPSTREAM_MIN_CONNECTED_SECONDS): 3601 is out of range 0...3600"),
        (["UPSTREAM_MIN_CONNECTED_SECONDS": "-1"], "upstream.minConnectedSeconds (from environment variable UPSTREAM_MIN_CONNECTED_SECONDS): -1 is out of range"),
        (["UPSTREAM_START_JITTER_SECONDS": "3601"], "upstream.startJitterSeconds (from environment variable UPSTREAM_START_JITTER_SECONDS): 3601 is out of range 0...3600"),
    ] as [([String: String], String)])
    func aBadSettingIsOneErrorNamingTheKeyAndTheEntry(environment: [String: String], message: String) async {
        let problems = await problems(environment)
        #expect(problems?.contains(message) == true, "\(problems ?? "accepted")")
    }

    @Test func thirtyTwoHostsAreAccepted() async throws {
        let configuration = try await load(["UPSTREAM_HOSTS": (1...32).map { "n\($0):1883" }.joined(separator: ",")])
        #expect(configuration.upstreamBroker.addresses.count == 32)
    }

    @Test func aHostsEntryThatIsTheDeviceBrokerWithTheSameClientIdIsRefused() async {
        let problems = await problems([
            "UPSTREAM_HOSTS": "10.0.0.5:1883,127.0.0.1:1883", "UPSTREAM_CLIENT_ID": "same", "MQTT_CLIENT_ID": "same",
        ])
        #expect(problems?.contains("upstream.clientId") == true, "\(problems ?? "accepted")")
    }
}
