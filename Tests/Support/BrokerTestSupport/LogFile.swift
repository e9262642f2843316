import Foundation

/// Reading the log files that brokers, recorders and the daemon write.
public enum LogFile {
    public static func text(_ url: URL, from offset: UInt64 = 0) -> String {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return "" }
        defer { try? handle.close() }
        do {
            try handle.seek(toOffset: offset)
            let data = try handle.readToEnd() ?? Data()
            return String(decoding: data, as: UTF8.self)
        } catch {
            return ""
        }
    }

    public static func size(_ url: URL) -> UInt64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        return (attributes?[.size] as? NSNumber)?.uint64Value ?? 0
    }

    /// The last `lines` lines, for failure messages.
    public static func tail(_ url: URL, lines: Int = 40) -> String {
        let all = text(url).split(separator: "\n", omittingEmptySubsequences: false)
        return "--- last \(lines) lines of \(url.path) ---\n" + all.suffix(lines).joined(separator: "\n")
    }
}
