import Foundation
import GatewayCore
import Logging
import MQTT
import Synchronization

/// Why a broker account could not be created or removed.
public struct BrokerAccountError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// The broker did not answer in time or the connection is down (worth retrying).
    public var isRetriable: Bool

    public init(_ message: String, retriable: Bool) {
        self.message = message
        isRetriable = retriable
    }

    public var description: String { "broker account: \(message)" }
}

/// Per-device accounts on the local mosquitto through its dynamic-security plugin
/// (`$CONTROL/dynamic-security/v1`): each device gets a client (username = device id, a generated
/// password) and a role that lets it do only what CONTRACTS.md §1 gives a device — publish
/// `device/{id}/event`, `telemetry`, `audio` and `register`; subscribe to and receive
/// `device/{id}/ack` and `device/{id}/response`. Nothing else (the plugin's default denies
/// publishing and subscribing).
///
/// Both operations are idempotent, so a resumed registration step does no harm: creating an
/// existing account sets its password and role again; removing a missing one succeeds.
///
/// The client must connect as an identity with the plugin's admin role and be subscribed to
/// ``responseTopic``; ``run()`` reads the answers.
public final class BrokerAccounts: Sendable {
    public static let controlTopic = "$CONTROL/dynamic-security/v1"
    public static let responseTopic = "$CONTROL/dynamic-security/v1/response"

    private let client: MQTTClient
    private let timeout: Duration
    private let logger: Logger
    private let pending = Mutex<[String: CheckedContinuation<Response?, Never>]>([:])

    /// One command's answer: `error` is nil on success.
    struct Response: Sendable {
        var command: String
        var error: String?
    }

    public init(client: MQTTClient, timeout: Duration = .seconds(5), logger: Logger) {
        self.client = client
        self.timeout = timeout
        self.logger = logger
    }

    /// Connects and reads the plugin's answers until the client stops.
    public func run() async {
        client.start()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for await _ in self.client.events {} }
            for await batch in client.messages {
                for message in batch where message.topicString == Self.responseTopic {
                    dispatch(message.payload)
                }
            }
            group.cancelAll()
        }
    }

    public func stop() async {
        await client.stop()
    }

    /// Whether the admin connection is up (commands fail at once while it is not).
    public var isConnected: Bool { client.isConnected }

    /// A password for a new device account: 24 random bytes, base64url (32 characters).
    public static func generatePassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    /// The role name of a device's account.
    public static func roleName(_ device: DeviceID) -> String { "edge-device-\(device.rawValue)" }

    /// What a device may do (CONTRACTS.md §1), as dynamic-security ACLs.
    static func acls(_ device: DeviceID) -> [[String: Any]] {
        let base = "device/\(device.rawValue)/"
        let sends = ["event", "telemetry", "audio", "register"].map {
            ["acltype": "publishClientSend", "topic": base + $0, "allow": true, "priority": 0] as [String: Any]
        }
        let receives = ["ack", "response"].flatMap {
            [
                ["acltype": "subscribeLiteral", "topic": base + $0, "allow": true, "priority": 0] as [String: Any],
                ["acltype": "publishClientReceive", "topic": base + $0, "allow": true, "priority": 0],
            ]
        }
        return sends + receives
    }

    /// Creates (or, when it exists, resets) the account of `device` with `password`.
    public func ensureAccount(for device: DeviceID, password: String) async throws(BrokerAccountError) {
        let role = Self.roleName(device)
        let createRole = try await send(["command": "createRole", "rolename": role, "acls": Self.acls(device)])
        if let error = createRole.error {
            guard error.lowercased().contains("already exists") else { throw BrokerAccountError("createRole \(role): \(error)", retriable: false) }
            // An earlier attempt made it: make its ACLs what they should be.
            for acl in Self.acls(device) {
                var command = acl
                command["command"] = "addRoleACL"
                command["rolename"] = role
                _ = try await send(command)
            }
        }
        let createClient = try await send([
            "command": "createClient", "username": device.rawValue, "password": password,
            "textname": "edge-gateway device", "roles": [["rolename": role, "priority": 0]],
        ])
        if let error = createClient.error {
            guard error.lowercased().contains("already exists") else {
                throw BrokerAccountError("createClient \(device): \(error)", retriable: false)
            }
            let setPassword = try await send(["command": "setClientPassword", "username": device.rawValue, "password": password])
            if let error = setPassword.error { throw BrokerAccountError("setClientPassword \(device): \(error)", retriable: false) }
            // Exactly the device's role, whatever it had (modifyClient replaces the list).
            let roles = try await send(["command": "modifyClient", "username": device.rawValue, "roles": [["rolename": role, "priority": 0]]])
            if let error = roles.error { throw BrokerAccountError("modifyClient \(device): \(error)", retriable: false) }
        }
        logger.info("broker account ready", metadata: ["device.id": "\(device)"])
    }

    /// Deletes the account of `device` and its role; a missing one is not an error.
    public func removeAccount(for device: DeviceID) async throws(BrokerAccountError) {
        for command in [
            ["command": "deleteClient", "username": device.rawValue],
            ["command": "deleteRole", "rolename": Self.roleName(device)],
        ] {
            let response = try await send(command)
            if let error = response.error, !error.lowercased().contains("not found") {
                throw BrokerAccountError("\(command["command"]!) \(device): \(error)", retriable: false)
            }
        }
        logger.info("broker account removed", metadata: ["device.id": "\(device)"])
    }

    /// Sends one command and waits for its answer (matched by `correlationData`).
    func send(_ command: [String: Any]) async throws(BrokerAccountError) -> Response {
        let correlation = UUID().uuidString
        var command = command
        command["correlationData"] = correlation
        guard let payload = try? JSONSerialization.data(withJSONObject: ["commands": [command]]) else {
            throw BrokerAccountError("cannot encode \(command["command"] ?? "?")", retriable: false)
        }
        let name = command["command"] as? String ?? "?"
        let timeout = self.timeout
        let response: Response? = await withTaskGroup(of: Response?.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Response?, Never>) in
                    self.pending.withLock { $0[correlation] = continuation }
                    do {
                        try self.client.publish(topic: Self.controlTopic, payload: Array(payload), qos: 1)
                    } catch {
                        self.resolve(correlation, Response(command: name, error: "__unsent__ \(error)"))
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.resolve(correlation, nil)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let response else { throw BrokerAccountError("\(name): no answer from the broker within \(timeout)", retriable: true) }
        if let error = response.error, error.hasPrefix("__unsent__") {
            throw BrokerAccountError("\(name): \(error.dropFirst("__unsent__ ".count))", retriable: true)
        }
        return response
    }

    /// Resumes the waiter of `correlation` with `response` (nil: timed out).
    private func resolve(_ correlation: String, _ response: Response?) {
        let continuation = pending.withLock { $0.removeValue(forKey: correlation) }
        continuation?.resume(returning: response)
    }

    private func dispatch(_ payload: [UInt8]) {
        guard let json = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any],
            let responses = json["responses"] as? [[String: Any]]
        else {
            logger.warning("unreadable answer from the dynamic-security plugin")
            return
        }
        for response in responses {
            guard let correlation = response["correlationData"] as? String else { continue }
            resolve(correlation, Response(command: response["command"] as? String ?? "", error: response["error"] as? String))
        }
    }
}
