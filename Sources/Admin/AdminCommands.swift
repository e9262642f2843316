import Foundation
import GatewayCore
import Hummingbird
import NIOCore

/// One cloud command as the operator sees it (`GET /api/commands`, the CLI's `commands list`).
public struct CommandView: Sendable, Equatable {
    public var deviceId: String
    public var commandId: String
    public var name: String
    /// `queued`, `delivered`, `succeeded`, `failed`, `rejected`, `expired`.
    public var status: String
    /// Sent to the device and not finished (a `queued` one may be waiting or sent).
    public var inFlight: Bool
    /// Raw JSON, as the cloud (or the device) sent it.
    public var params: [UInt8]?
    public var result: [UInt8]?
    public var message: String?
    public var expiresAt: Int64?
    public var receivedAt: Int64
    public var updatedAt: Int64
    public var attempts: Int

    public init(
        deviceId: String, commandId: String, name: String, status: String, inFlight: Bool, params: [UInt8]?, result: [UInt8]?,
        message: String?, expiresAt: Int64?, receivedAt: Int64, updatedAt: Int64, attempts: Int
    ) {
        self.deviceId = deviceId
        self.commandId = commandId
        self.name = name
        self.status = status
        self.inFlight = inFlight
        self.params = params
        self.result = result
        self.message = message
        self.expiresAt = expiresAt
        self.receivedAt = receivedAt
        self.updatedAt = updatedAt
        self.attempts = attempts
    }

    /// `{"deviceId", "commandId", "name", "status", "inFlight", "params", "result", "message",
    /// "expiresAt", "receivedAt", "updatedAt", "attempts"}` (params and result as JSON).
    func json() -> [UInt8] {
        var json = JSONText(capacity: 256 + (params?.count ?? 0) + (result?.count ?? 0))
        json.field("deviceId", string: deviceId)
        json.field("commandId", string: commandId)
        json.field("name", string: name)
        json.field("status", string: status)
        json.field("inFlight", bool: inFlight)
        if let params { json.field("params", rawJSON: params) } else { json.null("params") }
        if let result { json.field("result", rawJSON: result) } else { json.null("result") }
        json.field("message", string: message)
        json.field("expiresAt", int: expiresAt)
        json.field("receivedAt", int: receivedAt)
        json.field("updatedAt", int: updatedAt)
        json.field("attempts", int: Int64(attempts))
        return json.finish()
    }
}

/// What an operator's command request came to.
public enum CommandAnswer: Sendable {
    /// Stored now (answered `queued` upstream too).
    case queued(CommandView)
    /// The device already has a command with this id: as it stands.
    case existing(CommandView)
    /// Cancelled: now `rejected` with message `cancelled`.
    case cancelled(CommandView)
    /// Refused by the hub: `reason` is the contract's (`queue full`, `invalid command`, `unknown device`).
    case rejected(reason: String, detail: String?)
    /// A cancel that cannot be done (`no such command`, `already sent to the device`, …).
    case refused(notFound: Bool, message: String)
    /// The gateway could not do it (store error, stopping).
    case failed(String)
}

extension AdminSources {
    /// Cloud commands, for the operator (`commands.enabled`).
    public struct Commands: Sendable {
        public var list: @Sendable (_ device: DeviceID?) async throws -> [CommandView]
        public var send: @Sendable (_ device: DeviceID, _ payload: [UInt8]) async -> CommandAnswer
        public var cancel: @Sendable (_ device: DeviceID, _ commandID: String) async -> CommandAnswer

        public init(
            list: @escaping @Sendable (DeviceID?) async throws -> [CommandView],
            send: @escaping @Sendable (DeviceID, [UInt8]) async -> CommandAnswer,
            cancel: @escaping @Sendable (DeviceID, String) async -> CommandAnswer
        ) {
            self.list = list
            self.send = send
            self.cancel = cancel
        }
    }
}

extension AdminSources {
    /// Device shadows, for the operator (`shadow.enabled`).
    public struct Shadows: Sendable {
        /// The whole document (`{"desired", "reported", "version", "updatedAt"}`; version 0 and
        /// empty objects for a device without one), as the device gets it on `device/{id}/shadow`.
        public var document: @Sendable (_ device: DeviceID) -> [UInt8]

        public init(document: @escaping @Sendable (DeviceID) -> [UInt8]) {
            self.document = document
        }
    }
}

extension AdminServer {
    /// `GET /api/shadows/{device}`: the hub's copy of a device's shadow.
    func addShadowRoutes(to api: RouterGroup<Context>) {
        api.get("shadows/:device") { [sources] _, context -> Response in
            guard let shadows = sources.shadows else { return try Self.problem("shadows are off (shadow.enabled)", status: .notFound) }
            guard let device = context.parameters.get("device").map({ $0.removingPercentEncoding ?? $0 }).flatMap(DeviceID.init) else {
                return try Self.problem("device must be 1–64 characters of A-Z a-z 0-9 _ -", status: .badRequest)
            }
            return Self.rawJSON(shadows.document(device), status: .ok)
        }
    }

    /// `GET /api/commands?device=`, `POST /api/commands`, `DELETE /api/commands/{device}/{commandId}`.
    func addCommandRoutes(to api: RouterGroup<Context>) {
        api.get("commands") { [sources] request, _ -> Response in
            guard let commands = sources.commands else { return try Self.problem("commands are off (commands.enabled)", status: .notFound) }
            var device: DeviceID?
            if let text = request.uri.queryParameters.get("device") {
                guard let id = DeviceID(text) else { return try Self.problem("device must be 1–64 characters of A-Z a-z 0-9 _ -", status: .badRequest) }
                device = id
            }
            let list = try await commands.list(device)
            var body: [UInt8] = [UInt8(ascii: "[")]
            for (index, view) in list.enumerated() {
                if index > 0 { body.append(UInt8(ascii: ",")) }
                body += view.json()
            }
            body.append(UInt8(ascii: "]"))
            return Self.rawJSON(body, status: .ok)
        }
        api.post("commands") { [sources] request, _ -> Response in
            guard let commands = sources.commands else { return try Self.problem("commands are off (commands.enabled)", status: .notFound) }
            let body = try await request.body.collect(upTo: 64 * 1024)
            guard var fields = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
                Self.rejectedBodies.increment()
                return try Self.problem("the body must be a JSON object of at most 64 KiB", status: .badRequest)
            }
            guard let text = fields["deviceId"] as? String, let device = DeviceID(text) else {
                Self.rejectedBodies.increment()
                return try Self.problem("deviceId must be 1–64 characters of A-Z a-z 0-9 _ -", status: .badRequest)
            }
            fields["deviceId"] = nil
            // The operator need not make up an id; the answer names the one given.
            if fields["commandId"] == nil { fields["commandId"] = "op-" + UUID().uuidString.lowercased() }
            let payload = try JSONSerialization.data(withJSONObject: fields)
            return Self.answer(await commands.send(device, Array(payload)))
        }
        api.delete("commands/:device/:command") { [sources] _, context -> Response in
            guard let commands = sources.commands else { return try Self.problem("commands are off (commands.enabled)", status: .notFound) }
            // Path parameters as the client encoded them: a command id may hold any character.
            let decoded = { (name: String) in context.parameters.get(name).map { $0.removingPercentEncoding ?? $0 } }
            guard let device = decoded("device").flatMap(DeviceID.init), let commandID = decoded("command") else {
                return try Self.problem("DELETE /api/commands/{deviceId}/{commandId}", status: .badRequest)
            }
            return Self.answer(await commands.cancel(device, commandID))
        }
    }

    /// 202 queued, 200 as it stands or cancelled, 400/404/503 refused by the hub, 404/409 a cancel
    /// refused, 500 failed.
    static func answer(_ answer: CommandAnswer) -> Response {
        func problem(_ fields: [String: String?], _ status: HTTPResponse.Status) -> Response {
            let object = fields.compactMapValues { $0 }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            return rawJSON(Array(data), status: status)
        }
        switch answer {
        case .queued(let view): return rawJSON(view.json(), status: .accepted)
        case .existing(let view), .cancelled(let view): return rawJSON(view.json(), status: .ok)
        case .rejected(let reason, let detail):
            let status: HTTPResponse.Status =
                switch reason {
                case "queue full": .serviceUnavailable
                case "unknown device": .notFound
                default: .badRequest
                }
            return problem(["status": "rejected", "error": reason, "detail": detail], status)
        case .refused(let notFound, let message):
            return problem(["error": message], notFound ? .notFound : .conflict)
        case .failed(let message):
            return problem(["error": message], .internalServerError)
        }
    }

    static func rawJSON(_ bytes: [UInt8], status: HTTPResponse.Status) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
