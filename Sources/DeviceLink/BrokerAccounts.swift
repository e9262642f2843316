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
/// (`$CONTROL/dynamic-security/v1`): each device gets a client (username = device id, bound to
/// client id = device id, a generated password) and a role that lets it do only what
/// CONTRACTS.md §1 gives a device — publish `device/{id}/event`, `telemetry`, `status` (presence, §5), `audio`
/// and `register`; subscribe to and receive `device/{id}/ack` and `device/{id}/response`. Nothing else
/// (the plugin's default denies publishing and subscribing).
///
/// Accounts it did not make are never changed: every client and role it creates carries the
/// request id that made it in its `textname` (``marker(device:requestID:)``). Creating an account
/// that exists succeeds only when that marker is the same request's (a resumed step); anything
/// else is refused, never reset. Removing deletes only what carries the request's marker; a
/// missing account is not an error.
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
    /// The subscription to the plugin's answers stands (answers to commands sent before it would be lost).
    private let subscribed = Mutex(false)

    /// One command's answer: `error` is nil on success; `fields` are the string fields of the
    /// object in `data` (`getClient`: `data.client`, `getRole`: `data.role`).
    struct Response: Sendable {
        var command: String
        var error: String?
        var fields: [String: String] = [:]
    }

    /// An account as the broker holds it.
    public struct Account: Sendable, Equatable {
        public var username: String
        public var clientID: String?
        public var textName: String?
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
            group.addTask {
                for await event in self.client.events {
                    switch event {
                    case .subscribed: self.subscribed.withLock { $0 = true }
                    case .disconnected, .connectFailed: self.subscribed.withLock { $0 = false }
                    case .connected, .published, .addressChanged: break
                    }
                }
            }
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

    /// Whether the plugin's answers can be heard: connected and subscribed to ``responseTopic``.
    public var isReady: Bool { client.isConnected && subscribed.withLock { $0 } }

    /// A password for a new device account: 24 random bytes, base64url (32 characters).
    public static func generatePassword() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }

    /// The role name of a device's account.
    public static func roleName(_ device: DeviceID) -> String { "edge-device-\(device.rawValue)" }

    /// What a device may send on its own topics (CONTRACTS.md §1, §5–§7).
    public static let deviceSends = ["event", "telemetry", "status", "audio", "register", "command/result", "shadow/report", "shadow/get"]
    /// What a device may subscribe to and receive on its own topics (CONTRACTS.md §1, §6, §7).
    public static let deviceReceives = ["ack", "response", "command", "shadow/delta", "shadow"]

    /// What a device may do (CONTRACTS.md §1, §5–§7), as dynamic-security ACLs.
    static func acls(_ device: DeviceID) -> [[String: Any]] {
        let base = DeviceTopic.prefix(of: device)
        let sends = deviceSends.map {
            ["acltype": "publishClientSend", "topic": base + $0, "allow": true, "priority": 0] as [String: Any]
        }
        let receives = deviceReceives.flatMap {
            [
                ["acltype": "subscribeLiteral", "topic": base + $0, "allow": true, "priority": 0] as [String: Any],
                ["acltype": "publishClientReceive", "topic": base + $0, "allow": true, "priority": 0],
            ]
        }
        return sends + receives
    }

    /// What marks a client or role as made by the registration `requestID` of `device`.
    public static func marker(device: DeviceID, requestID: String) -> String {
        "edge-gateway device \(device.rawValue), request \(requestID)"
    }

    /// The broker account (dynamic-security client) named `username`; nil when there is none.
    public func account(_ username: String) async throws(BrokerAccountError) -> Account? {
        let response = try await send(["command": "getClient", "username": username])
        if let error = response.error {
            if error.lowercased().contains("not found") { return nil }
            throw BrokerAccountError("getClient \(username): \(error)", retriable: false)
        }
        return Account(username: username, clientID: response.fields["clientid"], textName: response.fields["textname"])
    }

    /// Creates the account of `device` for the registration `requestID`: a client bound to client
    /// id = device id, with `password` and only the device's role. An account or role that exists
    /// is refused unless this same request made it (a resumed step), and is never changed.
    public func createAccount(for device: DeviceID, password: String, requestID: String) async throws(BrokerAccountError) {
        let role = Self.roleName(device)
        let marker = Self.marker(device: device, requestID: requestID)
        let createRole = try await send(["command": "createRole", "rolename": role, "textname": marker, "acls": Self.acls(device)])
        if let error = createRole.error {
            guard error.lowercased().contains("already exists") else { throw BrokerAccountError("createRole \(role): \(error)", retriable: false) }
            let existing = try await send(["command": "getRole", "rolename": role])
            guard existing.error == nil, existing.fields["textname"] == marker else {
                throw BrokerAccountError("role \(role) exists and was not made by this registration; it is left as it is", retriable: false)
            }
        }
        let createClient = try await send([
            "command": "createClient", "username": device.rawValue, "password": password, "clientid": device.rawValue,
            "textname": marker, "roles": [["rolename": role, "priority": 0]],
        ])
        if let error = createClient.error {
            guard error.lowercased().contains("already exists") else {
                throw BrokerAccountError("createClient \(device): \(error)", retriable: false)
            }
            // Made by this request before a crash: done. Anyone else's: refused, never reset.
            guard let existing = try await account(device.rawValue), existing.textName == marker else {
                throw BrokerAccountError("broker account \(device) exists and was not made by this registration; it is left as it is", retriable: false)
            }
        }
        logger.info("broker account ready", metadata: ["device.id": "\(device)", "request.id": "\(requestID)"])
    }

    /// Deletes the account of `device` and its role when the registration `requestID` made them;
    /// a missing one, or one made by someone else, is left alone (not an error).
    public func removeAccount(for device: DeviceID, requestID: String) async throws(BrokerAccountError) {
        let marker = Self.marker(device: device, requestID: requestID)
        if let existing = try await account(device.rawValue) {
            if existing.textName == marker {
                let response = try await send(["command": "deleteClient", "username": device.rawValue])
                if let error = response.error, !error.lowercased().contains("not found") {
                    throw BrokerAccountError("deleteClient \(device): \(error)", retriable: false)
                }
            } else {
                logger.warning("broker account not made by this registration; not removed", metadata: ["device.id": "\(device)", "request.id": "\(requestID)"])
            }
        }
        let role = Self.roleName(device)
        let existingRole = try await send(["command": "getRole", "rolename": role])
        if existingRole.error == nil, existingRole.fields["textname"] == marker {
            let response = try await send(["command": "deleteRole", "rolename": role])
            if let error = response.error, !error.lowercased().contains("not found") {
                throw BrokerAccountError("deleteRole \(role): \(error)", retriable: false)
            }
        }
        logger.info("broker account removed", metadata: ["device.id": "\(device)", "request.id": "\(requestID)"])
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
                // Cancelled (the timeout came first; under load this task may not even have started
                // by then): the waiter is resumed with nil, whether it was registered before or after.
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Response?, Never>) in
                        let cancelled = self.pending.withLock { pending in
                            if Task.isCancelled { return true }
                            pending[correlation] = continuation
                            return false
                        }
                        if cancelled {
                            continuation.resume(returning: nil)
                            return
                        }
                        do {
                            try self.client.publish(topic: Self.controlTopic, payload: Array(payload), qos: 1)
                        } catch {
                            self.resolve(correlation, Response(command: name, error: "__unsent__ \(error)"))
                        }
                    }
                } onCancel: {
                    self.resolve(correlation, nil)
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
            var fields: [String: String] = [:]
            if let data = response["data"] as? [String: Any] {
                for case let object as [String: Any] in data.values {
                    for (key, value) in object { if let text = value as? String { fields[key] = text } }
                }
            }
            resolve(correlation, Response(command: response["command"] as? String ?? "", error: response["error"] as? String, fields: fields))
        }
    }
}
