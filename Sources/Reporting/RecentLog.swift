import Foundation
import Logging
import Synchronization

/// The last warnings and errors the daemon logged, newest first, for the status page and
/// `/api/status`: an operator who opens the page sees what went wrong without the journal.
///
/// Bounded: at most `capacity` entries, each message and its metadata cut to
/// ``maxTextLength`` characters. A message that repeats the newest entry (same level, logger and
/// text) is folded into it (`count`, `ts` of the latest), so a flood of one problem keeps
/// the others in view.
public final class RecentLog: Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        /// When it was last logged (ms since the epoch).
        public var ts: Int64
        /// `warning`, `error` or `critical`.
        public var level: String
        /// The logger's label (the part of the daemon that logged it).
        public var logger: String
        public var message: String
        /// `key=value` pairs, sorted by key.
        public var details: String
        /// How many times in a row it was logged.
        public var count: Int64
    }

    public static let maxTextLength = 300
    public let capacity: Int
    private let entries = Mutex<[Entry]>([])

    public init(capacity: Int = 30) {
        self.capacity = capacity
    }

    /// Keeps `message` when `level` is warning or worse; anything lower is ignored.
    public func record(
        level: Logger.Level, logger: String, message: String, metadata: Logger.Metadata?,
        atMs now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
    ) {
        guard level >= .warning else { return }
        let message = Self.cut(message)
        let details = Self.cut((metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        entries.withLock { entries in
            if var newest = entries.first, newest.level == level.rawValue, newest.logger == logger, newest.message == message {
                newest.count += 1
                newest.ts = now
                newest.details = details
                entries[0] = newest
                return
            }
            entries.insert(Entry(ts: now, level: level.rawValue, logger: logger, message: message, details: details, count: 1), at: 0)
            if entries.count > capacity { entries.removeLast(entries.count - capacity) }
        }
    }

    /// Newest first.
    public var all: [Entry] { entries.withLock { $0 } }

    private static func cut(_ text: String) -> String {
        text.count <= maxTextLength ? text : String(text.prefix(maxTextLength - 1)) + "…"
    }
}
