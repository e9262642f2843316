import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `edge-gateway commands list|send|cancel`: the operator's side of cloud commands, through the
/// running daemon's admin API (`/api/commands`, with `admin.token`), so a command from the CLI
/// takes the same path as one from the cloud.
struct CommandsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commands",
        abstract: "List, send and cancel cloud commands through the running daemon's admin API.",
        discussion: """
            Uses admin.host, admin.port and admin.token of the configuration (ADMIN_TOKEN from the \
            environment). Exit status: 0 done (an empty list says so on standard error); 1 the daemon \
            refused (the reason is printed) or cannot be reached; 2 invalid configuration or arguments.
            """,
        subcommands: [List.self, Send.self, Cancel.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queued, in-flight and recent commands (one device or all).")

        @OptionGroup var options: ConfigOption
        @Option(help: "Only this device.") var device: String?
        @Flag(help: "Print the API's JSON instead of a table.") var json = false

        func run() async throws {
            let api = try await AdminAPI(options)
            var path = "/api/commands"
            if let device { path += "?device=" + AdminAPI.escaped(device) }
            let reply = try await api.send("GET", path)
            guard reply.status == 200 else { throw api.refused(reply) }
            if json {
                print(reply.text)
                return
            }
            let rows = (try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [[String: Any]]) ?? []
            if rows.isEmpty {
                printError(device.map { "no commands for \($0)" } ?? "no commands")
                return
            }
            print("DEVICE".padding(toLength: 24, withPad: " ", startingAt: 0) + " COMMAND".padding(toLength: 38, withPad: " ", startingAt: 0)
                + " NAME".padding(toLength: 17, withPad: " ", startingAt: 0) + " STATUS      SENT  UPDATED              MESSAGE")
            for row in rows {
                let status = (row["status"] as? String ?? "?") + ((row["inFlight"] as? Bool ?? false) ? "*" : "")
                let updated = (row["updatedAt"] as? NSNumber).map { Date(timeIntervalSince1970: $0.doubleValue / 1000).formatted(.iso8601) } ?? "-"
                print(
                    (row["deviceId"] as? String ?? "").padding(toLength: 24, withPad: " ", startingAt: 0) + " "
                        + (row["commandId"] as? String ?? "").padding(toLength: 37, withPad: " ", startingAt: 0) + " "
                        + (row["name"] as? String ?? "").padding(toLength: 16, withPad: " ", startingAt: 0) + " "
                        + status.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + String(format: "%5d", (row["attempts"] as? Int) ?? 0) + "  " + updated + "  " + (row["message"] as? String ?? ""))
            }
            printError("* sent to the device, waiting for its answer")
        }
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Queue a command for a device, as the cloud would.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The device id.") var device: String
        @Argument(help: "The command's name.") var name: String
        @Option(help: "Parameters: any JSON (e.g. '{\"times\": 3}').") var params: String?
        @Option(help: "Expire after this many seconds.") var ttl: Int?
        @Option(help: "The command id (default: op-<uuid>); sending the same id again does not queue it twice.") var id: String?

        func run() async throws {
            var body: [String: Any] = ["deviceId": device, "name": name]
            if let params {
                guard let value = try? JSONSerialization.jsonObject(with: Data(params.utf8), options: [.fragmentsAllowed]) else {
                    printError("--params is not JSON: \(params)")
                    throw ExitCode(2)
                }
                body["params"] = value
            }
            if let ttl { body["ttlSeconds"] = ttl }
            if let id { body["commandId"] = id }
            let api = try await AdminAPI(options)
            let reply = try await api.send("POST", "/api/commands", body: Array(try JSONSerialization.data(withJSONObject: body)))
            guard reply.status == 202 || reply.status == 200 else { throw api.refused(reply) }
            let answer = (try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]) ?? [:]
            let commandID = answer["commandId"] as? String ?? "?"
            print(reply.status == 202
                ? "queued \(commandID) for \(device)"
                : "\(commandID) is known already for \(device): \(answer["status"] as? String ?? "?") (not queued again)")
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a command not yet sent to its device (it becomes rejected, cancelled).")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The device id.") var device: String
        @Argument(help: "The command id.") var id: String

        func run() async throws {
            let api = try await AdminAPI(options)
            let path = "/api/commands/" + AdminAPI.escaped(device) + "/" + AdminAPI.escaped(id)
            let reply = try await api.send("DELETE", path)
            guard reply.status == 200 else { throw api.refused(reply) }
            print("cancelled \(id) for \(device)")
        }
    }
}

/// The running daemon's admin API as the CLI uses it: the address and token of the configuration.
struct AdminAPI {
    let base: String
    let token: String?

    struct Reply {
        var status: Int
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    init(_ options: ConfigOption) async throws {
        let configuration = try await options.load()
        guard let api = AdminAPI(configuration) else {
            printError("the admin API is off (admin.enabled): the CLI reaches the daemon through it")
            throw ExitCode(2)
        }
        self = api
    }

    /// The admin API of `configuration`; nil when it is off.
    init?(_ configuration: GatewayConfiguration) {
        guard configuration.admin.enabled else { return nil }
        // A daemon listening on every address is reached on loopback.
        let host =
            switch configuration.admin.host {
            case "0.0.0.0", "": "127.0.0.1"
            case "::": "[::1]"
            case let name where name.contains(":"): "[\(name)]"
            case let name: name
            }
        base = "http://\(host):\(configuration.admin.port)"
        token = configuration.admin.token
    }

    func send(_ method: String, _ path: String, body: [UInt8]? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: base + path)
        request.method = .init(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let bytes = try await response.body.collect(upTo: 16 * 1024 * 1024)
            return Reply(status: Int(response.status.code), body: Array(buffer: bytes))
        } catch {
            printError("cannot reach the daemon's admin API at \(base) (is edge-gateway running? admin.host, admin.port): \(error)")
            throw ExitCode(1)
        }
    }

    /// One path segment or query value, percent-encoded.
    static func escaped(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// The daemon's refusal, printed in its words; exit 1.
    func refused(_ reply: Reply) -> ExitCode {
        let fields = (try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]) ?? [:]
        var message = fields["error"] as? String ?? reply.text
        if let detail = fields["detail"] as? String { message += ": \(detail)" }
        if reply.status == 401 { message = "the admin API wants admin.token (ADMIN_TOKEN): \(message)" }
        printError("refused (HTTP \(reply.status)): \(message)")
        return ExitCode(1)
    }
}

/// `edge-gateway shadow get DEVICE`: the hub's copy of a device's shadow, through the running
/// daemon's admin API (`/api/shadows/{device}`).
struct ShadowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shadow",
        abstract: "Show a device's shadow (the hub's copy) through the running daemon's admin API.",
        discussion: "Exit status: 0 done; 1 the daemon refused or cannot be reached; 2 invalid configuration.",
        subcommands: [Get.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The whole document: desired, reported, version, updatedAt.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The device id.") var device: String
        @Flag(help: "Print the API's JSON as it is.") var json = false

        func run() async throws {
            let api = try await AdminAPI(options)
            let reply = try await api.send("GET", "/api/shadows/" + AdminAPI.escaped(device))
            guard reply.status == 200 else { throw api.refused(reply) }
            guard !json, let document = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any] else {
                print(reply.text)
                return
            }
            let version = (document["version"] as? NSNumber)?.int64Value ?? 0
            if version == 0 { printError("\(device) has no shadow on this hub yet") }
            func pretty(_ value: Any?) -> String {
                guard let value, let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .prettyPrinted, .fragmentsAllowed])
                else { return "{}" }
                return String(decoding: data, as: UTF8.self)
            }
            let updated = (document["updatedAt"] as? NSNumber).map { Date(timeIntervalSince1970: $0.doubleValue / 1000).formatted(.iso8601) } ?? "-"
            print("device    \(device)")
            print("version   \(version)  (updated \(updated))")
            print("desired   \(pretty(document["desired"]))")
            print("reported  \(pretty(document["reported"]))")
        }
    }
}
