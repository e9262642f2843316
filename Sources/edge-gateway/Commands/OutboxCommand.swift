import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import Outbox

struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Inspect the outbox; safe while the daemon runs (read-only).",
        discussion: """
            Exit status: 0 done (an empty result says so on standard error); 1 no outbox at the \
            configured store.path yet (the daemon creates it on first start), or it cannot be opened \
            or read (the reason is printed); 2 invalid configuration.
            """,
        subcommands: [Stats.self, Peek.self])

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Depth per device, bytes, oldest age, drops and rejects by reason.")

        @OptionGroup var options: ConfigOption
        @Option(help: "Only this device.") var device: String?
        @Option(help: "At most this many devices in the listing.") var limit: Int = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            var stats: OutboxStats
            if let live: OutboxStats = await fromRunningDaemon(options, "/api/outbox?devices=100000") {
                stats = live
            } else {
                let (inspector, path) = try await openInspector(options)
                stats = try await reading(path) { try await inspector.stats() }
            }
            if let device {
                stats.devices = stats.devices.filter { $0.deviceId == device }
                if stats.devices.isEmpty { printError("device \(device) has no events in the outbox") }
            }
            let shownDevices = Array(stats.devices.prefix(max(limit, 0)))
            if json {
                var shown = stats
                shown.devices = shownDevices
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(shown), as: UTF8.self))
                return
            }
            print("depth        \(stats.depth) events")
            print("bytes        \(stats.bytes)")
            print("oldest age   \(stats.oldestAgeSeconds.map { formatAge($0) } ?? "-")")
            print("drops        " + stats.drops.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            print("rejects      " + (stats.rejects.isEmpty ? "-" : stats.rejects.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")))
            if let wear = stats.wear {
                let seconds = Double(max(wear.seconds, 1))
                print(String(
                    format: "written      %lld bytes in %lld commits over %lld s (%.1f commits/s, %.0f bytes/s)",
                    wear.writtenBytes, wear.commits, wear.seconds, Double(wear.commits) / seconds, Double(wear.writtenBytes) / seconds))
            }
            if !shownDevices.isEmpty {
                print("")
                print("DEVICE".padding(toLength: 66, withPad: " ", startingAt: 0) + "   DEPTH      BYTES  OLDEST")
                for entry in shownDevices {
                    print(
                        entry.deviceId.padding(toLength: 66, withPad: " ", startingAt: 0)
                            + String(format: " %7lld %10lld  ", entry.depth, entry.bytes)
                            + (entry.oldestAgeSeconds.map { formatAge($0) } ?? "-"))
                }
                if stats.devices.count > shownDevices.count {
                    print("… \(stats.devices.count - shownDevices.count) more devices (--limit)")
                }
            }
        }
    }

    struct Peek: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the oldest stored events (what is sent next).")

        @OptionGroup var options: ConfigOption
        @Option(help: "Only this device.") var device: String?
        @Option(help: "How many events.") var limit: Int = 10

        func run() async throws {
            var lines: [String]
            let query = "/api/outbox/peek?limit=\(min(max(limit, 1), 1000))" + (device.map { "&device=" + AdminAPI.escaped($0) } ?? "")
            if let live: [PeekLine] = await fromRunningDaemon(options, query), limit <= 1000 {
                lines = live.map { "#\($0.seq) \($0.deviceId) \($0.eventId) \($0.payload)" }
            } else {
                let (inspector, path) = try await openInspector(options)
                let events = try await reading(path) { try await inspector.peek(device: device, limit: max(limit, 1)) }
                lines = events.map { "#\($0.seq) \($0.device) \($0.eventID) \(String(decoding: $0.payload, as: UTF8.self))" }
            }
            if lines.isEmpty {
                printError(device.map { "device \($0) has no events in the outbox" } ?? "the outbox is empty")
            }
            for line in lines { print(line) }
        }

        struct PeekLine: Decodable {
            var seq: Int64
            var deviceId: String
            var eventId: String
            var payload: String
        }
    }
}

/// What the running daemon of this configuration answers on its admin API, or nil when none answers
/// (or another daemon does: `GET /api` must name this hub and this `store.path`): then the CLI reads
/// the files. Only when the store has an event log (`<store.path>-events`): without one the files are
/// current. The daemon's answer is current; the files
/// lag behind while it runs, by up to `store.eventLogSeconds` (its open transaction).
private func fromRunningDaemon<T: Decodable>(_ options: ConfigOption, _ path: String) async -> T? {
    guard let configuration = try? await options.load(), let api = AdminAPI(configuration),
        FileManager.default.fileExists(atPath: configuration.store.path + "-events")
    else { return nil }
    func get(_ path: String) async -> [UInt8]? {
        var request = HTTPClientRequest(url: api.base + path)
        if let token = api.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        guard let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(3)), response.status.code == 200,
            let body = try? await response.body.collect(upTo: 64 * 1024 * 1024)
        else { return nil }
        return Array(buffer: body)
    }
    // The daemon on that port must be this configuration's hub.
    guard let index = await get("/api").flatMap({ try? JSONDecoder().decode(DaemonIndex.self, from: Data($0)) }),
        index.hubId == configuration.hubID, index.storePath == configuration.store.path, let body = await get(path)
    else { return nil }
    return try? JSONDecoder().decode(T.self, from: Data(body))
}

/// The part of `GET /api` that names the hub.
private struct DaemonIndex: Decodable {
    var hubId: String
    var storePath: String?
}

/// Opens the configured store read-only; on a problem says what it is in plain words and exits 1.
private func openInspector(_ options: ConfigOption) async throws -> (OutboxInspector, path: String) {
    let path = try await options.load().store.path
    if let problem = FileCheck.readProblem(path) {
        // Checked here, before SQLite: a read-only command must not create the file.
        printError(
            problem == FileCheck.noSuchFile
                ? "no outbox at \(path) (the daemon creates it on first start)" : "cannot read the outbox at \(path): \(problem)")
        throw ExitCode(1)
    }
    return (try await reading(path) { try OutboxInspector(path: path) }, path)
}

/// Runs a read of the outbox at `path`; an error is printed in plain words and exits 1.
private func reading<T>(_ path: String, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as OutboxError {
        let reason = error.message.hasPrefix(path + ": ") ? String(error.message.dropFirst(path.count + 2)) : error.message
        switch error.code {
        case .corrupt: printError("the outbox at \(path) is damaged (the daemon moves it aside at its next start): \(reason)")
        default: printError("cannot read the outbox at \(path): \(reason)")
        }
        throw ExitCode(1)
    }
}

func formatAge(_ seconds: Double) -> String {
    if seconds < 120 { return String(format: "%.1fs", seconds) }
    if seconds < 7200 { return String(format: "%.1fm", seconds / 60) }
    if seconds < 172_800 { return String(format: "%.1fh", seconds / 3600) }
    return String(format: "%.1fd", seconds / 86400)
}
