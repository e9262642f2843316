import Foundation
import Logging
import Shadow
import Synchronization

/// Parses test JSON (generous limits: the tests of the limits pass their own).
func json(_ text: String) throws -> JSONValue {
    try JSONValue.parse(Array(text.utf8), maxBytes: 1 << 22)
}

/// Parses a test object.
func object(_ text: String) throws -> JSONObject {
    guard case .object(let object) = try json(text) else { throw TestFailure("not an object: \(text)") }
    return object
}

func text(_ bytes: [UInt8]) -> String {
    String(decoding: bytes, as: UTF8.self)
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A logger that writes nothing.
let quietLogger = Logger(label: "shadow-tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// Records what is logged through it, for tests of log lines.
final class LogRecorder: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    var recorded: [Entry] { entries.withLock { $0 } }

    var logger: Logger {
        var logger = Logger(label: "shadow-tests", factory: { _ in Handler(recorder: self) })
        logger.logLevel = .trace
        return logger
    }

    func append(_ entry: Entry) {
        entries.withLock { $0.append(entry) }
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            recorder.append(
                Entry(
                    level: event.level, message: "\(event.message)",
                    metadata: (event.metadata ?? [:]).mapValues { "\($0)" }))
        }
    }
}
