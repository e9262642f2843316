import CSystemd
import Foundation
import Logging

/// Sends log records to the systemd journal natively (`sd_journal_sendv`), with the level as
/// `PRIORITY`, the message as `MESSAGE`, and each metadata key as an upper-case field
/// (`device.id` → `DEVICE_ID`, `event.id` → `EVENT_ID`), so `journalctl DEVICE_ID=abc` works.
public struct JournaldLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let identifier: String

    public init(label: String, identifier: String = "edge-gateway") {
        self.label = label
        self.identifier = identifier
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String] = [
            "MESSAGE=\(event.message)",
            "PRIORITY=\(Self.priority(event.level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "LOGGER=\(label)",
            "CODE_FILE=\(event.file)",
            "CODE_LINE=\(event.line)",
            "CODE_FUNC=\(event.function)",
        ]
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for (key, value) in merged {
            fields.append("\(Self.fieldName(key))=\(value)")
        }
        // libsystemd drops records silently when there is no journal socket (a container without
        // journald, say); keep them on stderr then, with the <priority> prefix that systemd's
        // stream capture understands.
        if !Self.journalAvailable || Self.send(fields) < 0 {
            let details = merged.keys.sorted().map { " \($0)=\(merged[$0]!)" }.joined()
            FileHandle.standardError.write(Data("<\(Self.priority(event.level))>\(event.message)\(details)\n".utf8))
        }
    }

    static let journalAvailable = FileManager.default.fileExists(atPath: "/run/systemd/journal/socket")

    /// Returns what `sd_journal_sendv` returned (negative errno on failure).
    @discardableResult
    static func send(_ fields: [String]) -> Int32 {
        // All fields in one buffer, so every iovec points into memory that stays valid for the
        // whole call (pointers must not escape a `withUnsafe…` closure).
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = buffer.count
            buffer.append(contentsOf: field.utf8)
            ranges.append(start..<buffer.count)
        }
        return buffer.withUnsafeMutableBytes { raw in
            let vectors = ranges.map { range in
                iovec(iov_base: raw.baseAddress.map { $0 + range.lowerBound }, iov_len: range.count)
            }
            return edge_sd_journal_sendv(vectors, Int32(vectors.count))
        }
    }

    /// syslog priorities: 2 crit, 3 err, 4 warning, 5 notice, 6 info, 7 debug.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Journal field names are `[A-Z0-9_]`, not starting with `_` (reserved for trusted fields).
    static func fieldName(_ key: String) -> String {
        var name = String(key.uppercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" })
        while name.hasPrefix("_") { name.removeFirst() }
        if name.isEmpty || name.first!.isNumber { name = "F" + name }
        return name
    }
}
