#if canImport(Glibc)
import Glibc
#endif

/// A file written at given offsets and made durable with `fdatasync`: the outbox's event log.
/// Not thread-safe: one owner (the outbox's writer thread).
public final class DurableFile: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let operation: String
        public let path: String
        public let code: Int32
        public var description: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }
        /// The file system is full (or the quota is spent).
        public var isFull: Bool { code == ENOSPC || code == EDQUOT }
    }

    public let path: String
    private var descriptor: Int32

    /// Opens `path` for reading and writing, creating it (mode 0600) when missing; or, with
    /// `readOnly`, an existing file for reading.
    public init(path: String, readOnly: Bool = false) throws {
        self.path = path
        descriptor = readOnly ? open(path, O_RDONLY | O_CLOEXEC) : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw Failure(operation: "open", path: path, code: errno) }
    }

    deinit { close() }

    /// The file's size in bytes.
    public func size() throws -> Int64 {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw Failure(operation: "fstat", path: path, code: errno) }
        return Int64(info.st_size)
    }

    /// Writes all of `bytes` at `offset` (retrying short writes and interruptions).
    public func write(_ bytes: [UInt8], at offset: Int64) throws {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                pwrite(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "write", path: path, code: errno)
            }
            done += written
        }
    }

    /// Reads up to `count` bytes at `offset`; fewer at the end of the file.
    public func read(count: Int, at offset: Int64) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if got < 0 {
                if errno == EINTR { continue }
                throw Failure(operation: "read", path: path, code: errno)
            }
            if got == 0 { break }
            done += got
        }
        bytes.removeLast(count - done)
        return bytes
    }

    /// Cuts the file to `size` bytes (freeing the blocks after it).
    public func truncate(to size: Int64) throws {
        while ftruncate(descriptor, off_t(size)) != 0 {
            if errno == EINTR { continue }
            throw Failure(operation: "ftruncate", path: path, code: errno)
        }
    }

    /// `fdatasync`: the data written so far (and the size) is on the disk when this returns.
    public func syncData() throws {
        while fdatasync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw Failure(operation: "fdatasync", path: path, code: errno)
        }
    }

    public func close() {
        if descriptor >= 0 {
            _ = Glibc.close(descriptor)
            descriptor = -1
        }
    }
}
