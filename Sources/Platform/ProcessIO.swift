import Foundation

/// What the kernel counts of this process's storage I/O (`/proc/self/io`).
public enum ProcessIO {
    /// Bytes this process caused to be written to storage (`write_bytes`: the SQLite stores, their
    /// WAL and checkpoints; not the journal, which journald writes), since it started; nil where the
    /// kernel does not account task I/O. Reading it costs no disk: procfs is answered from memory.
    public static func writtenBytes() -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8) else { return nil }
        return parse(text)
    }

    /// `write_bytes` of a `/proc/PID/io` text.
    public static func parse(_ text: String) -> Int64? {
        for line in text.split(separator: "\n") where line.hasPrefix("write_bytes:") {
            return Int64(line.dropFirst("write_bytes:".count).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
