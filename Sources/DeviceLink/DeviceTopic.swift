import GatewayCore

/// The topic grammar of the device broker (CONTRACTS.md §1), in one place: what devices send on
/// `device/{id}/{channel}`, what the gateway answers on `device/{id}/ack` and
/// `device/{id}/response`, and the hub's own `hub/{hubId}/listen`. Nothing outside DeviceLink
/// spells a device topic.
public struct DeviceTopic: Hashable, Sendable {
    /// What a device sends on a topic.
    public enum Channel: String, Sendable, CaseIterable {
        case event
        case telemetry
        /// Presence (CONTRACTS.md §5): `{"online": true|false}`, retained, the offline one as the will.
        case status
        case audio
        case register
        /// A device's answer to a command (CONTRACTS.md §6): `device/{id}/command/result`.
        case commandResult = "command/result"
        /// A device's patch of its shadow's `reported` (CONTRACTS.md §7): `device/{id}/shadow/report`.
        case shadowReport = "shadow/report"
        /// A device asks for its whole shadow (any payload): `device/{id}/shadow/get`.
        case shadowGet = "shadow/get"
    }

    public let device: DeviceID
    public let channel: Channel

    public init(device: DeviceID, channel: Channel) {
        self.device = device
        self.channel = channel
    }

    /// The MQTT topic string.
    public var topic: String { "device/\(device.rawValue)/\(channel.rawValue)" }

    /// The topic a device receives its acknowledgements on.
    public static func ack(for device: DeviceID) -> String { "device/\(device.rawValue)/ack" }

    /// The topic a device receives responses on (dialog answers, registration results, errors).
    public static func response(for device: DeviceID) -> String { "device/\(device.rawValue)/response" }

    /// The topic a device receives cloud commands on (CONTRACTS.md §6).
    public static func command(for device: DeviceID) -> String { "device/\(device.rawValue)/command" }

    /// The topic a device receives its shadow's delta on (CONTRACTS.md §7).
    public static func shadowDelta(for device: DeviceID) -> String { "device/\(device.rawValue)/shadow/delta" }

    /// The topic a device receives its whole shadow on, in answer to `shadow/get` (CONTRACTS.md §7).
    public static func shadow(for device: DeviceID) -> String { "device/\(device.rawValue)/shadow" }

    /// The subscription filter of a channel for every device: `device/+/{channel}`.
    public static func filter(_ channel: Channel) -> String { "device/+/\(channel.rawValue)" }

    /// The prefix of every topic of one device (`device/{id}/`), for the broker's ACLs.
    public static func prefix(of device: DeviceID) -> String { "device/\(device.rawValue)/" }

    /// The topic of push-to-talk requests for the hub's microphone: `hub/{hubId}/listen`.
    public static func listen(hubID: String) -> String { "hub/\(hubID)/listen" }

    /// Why a topic was not accepted.
    public enum ParseError: Error, Equatable, Sendable {
        /// Not of the form `device/{x}/{channel}` with a known channel (or not of a channel the
        /// reader takes); the topic is kept, escaped for logs.
        case notADeviceTopic(escaped: String)
        /// The form is right but the id is not a valid ``DeviceID``; the raw level is kept, escaped for logs.
        case invalidDeviceID(escaped: String)
    }

    /// Parses a topic as received from the broker. Works on bytes: topics are UTF-8 but nothing
    /// here trusts that. The channel is everything after the id (`event`, `command/result`).
    public static func parse(_ topic: some Collection<UInt8>) -> Result<DeviceTopic, ParseError> {
        let levels = topic.split(separator: UInt8(ascii: "/"), maxSplits: 2, omittingEmptySubsequences: false)
        guard levels.count == 3, levels[0].elementsEqual("device".utf8), levels[2].count <= 16,
            let channel = Channel(rawValue: String(decoding: levels[2], as: UTF8.self))
        else {
            return .failure(.notADeviceTopic(escaped: DeviceID.escapedForLog(topic)))
        }
        guard let device = DeviceID(bytes: levels[1]) else {
            return .failure(.invalidDeviceID(escaped: DeviceID.escapedForLog(levels[1])))
        }
        return .success(DeviceTopic(device: device, channel: channel))
    }

    public static func parse(_ topic: String) -> Result<DeviceTopic, ParseError> {
        parse(Array(topic.utf8))
    }
}
