import ArgumentParser
import Foundation
import Outbox

struct OutboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox",
        abstract: "Inspect the outbox; safe while the daemon runs (read-only).",
        subcommands: [Stats.self, Peek.self])

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Depth per device, bytes, oldest age, drops and rejects by reason.")

        @OptionGroup var options: ConfigOption
        @Option(help: "Only this device.") var device: String?
        @Option(help: "At most this many devices in the listing.") var limit: Int = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let inspector = try await openInspector(options)
            var stats = try await inspector.stats()
            if let device { stats.devices = stats.devices.filter { $0.deviceId == device } }
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
            let inspector = try await openInspector(options)
            for event in try await inspector.peek(device: device, limit: max(limit, 1)) {
                print("#\(event.seq) \(event.device) \(event.eventID) \(String(decoding: event.payload, as: UTF8.self))")
            }
        }
    }
}

private func openInspector(_ options: ConfigOption) async throws -> OutboxInspector {
    let configuration = try await options.load()
    do {
        return try OutboxInspector(path: configuration.store.path)
    } catch {
        printError("\(error)")
        throw ExitCode(1)
    }
}

func formatAge(_ seconds: Double) -> String {
    if seconds < 120 { return String(format: "%.1fs", seconds) }
    if seconds < 7200 { return String(format: "%.1fm", seconds / 60) }
    if seconds < 172_800 { return String(format: "%.1fh", seconds / 3600) }
    return String(format: "%.1fd", seconds / 86400)
}
