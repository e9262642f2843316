// Measures durable appends into the outbox alone (no MQTT): N events of a given size, offered in
// batches by several concurrent producers, with group commit and the configured fsync mode.
//
//   outbox-bench [--events N] [--size BYTES] [--batch N] [--producers N]
//                [--synchronous full|normal] [--commit-interval-ms N] [--dir PATH] [--keep 1]
//
// --keep 1 leaves the database in PATH (to start a gateway on a large backlog).
//
// Prints one line: events, seconds, events/s, and the database size.
import Foundation
import Logging
import Outbox

var arguments = [String: String]()
var index = 1
let argv = CommandLine.arguments
while index + 1 < argv.count, argv[index].hasPrefix("--") {
    arguments[String(argv[index].dropFirst(2))] = argv[index + 1]
    index += 2
}
let events = Int(arguments["events"] ?? "") ?? 200_000
let size = Int(arguments["size"] ?? "") ?? 256
let batch = Int(arguments["batch"] ?? "") ?? 100
let producers = Int(arguments["producers"] ?? "") ?? 4
let directory = arguments["dir"] ?? NSTemporaryDirectory() + "outbox-bench-\(getpid())"
try? FileManager.default.removeItem(atPath: directory)
var configuration = OutboxConfiguration(path: directory + "/outbox.db")
configuration.synchronous = OutboxConfiguration.Synchronous(rawValue: arguments["synchronous"] ?? "full") ?? .full
configuration.commitIntervalMs = Int(arguments["commit-interval-ms"] ?? "") ?? 2
configuration.maxBytes = 1 << 40
configuration.maxBatch = Int(arguments["max-batch"] ?? "") ?? 2000

let outbox = try Outbox.open(configuration: configuration, logger: Logger(label: "outbox-bench"))
let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
// Received now, so a gateway started on a kept store does not expire them by age.
let receivedAt = Int64(Date().timeIntervalSince1970 * 1000)
let perProducer = events / producers
let start = ContinuousClock.now
let stored = await withTaskGroup(of: Int.self) { group in
    for producer in 0..<producers {
        group.addTask {
            var stored = 0
            var next = 0
            while next < perProducer {
                let count = min(batch, perProducer - next)
                let records = (next..<(next + count)).map {
                    OutboxRecord(device: "dev-\(producer)", eventID: "e\($0)", key: "dev-\(producer)", receivedAt: receivedAt, payload: payload)
                }
                next += count
                for outcome in await outbox.append(records) {
                    if case .stored = outcome { stored += 1 }
                }
            }
            return stored
        }
    }
    var total = 0
    for await count in group { total += count }
    return total
}
let elapsed = start.duration(to: .now)
await outbox.close()
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let fileSize = (try? FileManager.default.attributesOfItem(atPath: configuration.path)[.size] as? Int) ?? 0
print(String(format: "stored=%d seconds=%.3f events_per_s=%.0f synchronous=%@ commit_interval_ms=%d batch=%d producers=%d db_bytes=%d",
    stored, seconds, Double(stored) / seconds, configuration.synchronous.rawValue, configuration.commitIntervalMs, batch, producers, fileSize))
if arguments["keep"] != "1" {
    try? FileManager.default.removeItem(atPath: directory)
}
