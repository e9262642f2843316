import Foundation
import GatewayCore
import Logging
import Synchronization

/// Writes log records to stderr, one line each, as readable text or as JSON objects.
struct GatewayStreamLogHandler: LogHandler {
    enum Style { case text, json }

    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    private let label: String
    private let style: Style

    private static let lock = Mutex(())

    init(label: String, style: Style) {
        self.label = label
        self.style = style
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let timestamp = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        var line: [UInt8]
        switch style {
        case .text:
            var text = "\(timestamp) \(event.level.rawValue.uppercased()) \(label): \(event.message)"
            for key in merged.keys.sorted() {
                text += " \(key)=\(merged[key]!)"
            }
            line = Array(text.utf8)
        case .json:
            var json = JSONText(capacity: 256)
            json.field("time", string: timestamp)
            json.field("level", string: event.level.rawValue)
            json.field("logger", string: label)
            json.field("message", string: "\(event.message)")
            line = json.finish()
            line.removeLast()
            for key in merged.keys.sorted() {
                line.append(UInt8(ascii: ","))
                JSONText.appendString(key, to: &line)
                line.append(UInt8(ascii: ":"))
                JSONText.appendString("\(merged[key]!)", to: &line)
            }
            line.append(UInt8(ascii: "}"))
        }
        line.append(UInt8(ascii: "\n"))
        // One write per record under a lock, so lines from different threads never interleave.
        Self.lock.withLock { _ in
            FileHandle.standardError.write(Data(line))
        }
    }
}
