import BrokerTestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A datagram socket that plays systemd's side of `sd_notify`: the daemon under test gets its path
/// as `NOTIFY_SOCKET` and each datagram it sends (`READY=1`, `STATUS=…`) is recorded.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    private var receivedDatagrams: [String] = []
    private var closed = false

    /// The socket lives in /tmp under a short name (sun_path holds at most 107 bytes), or at `path`.
    init(path requested: String? = nil) throws {
        let path = requested ?? "/tmp/eg-notify-\(UUID().uuidString.prefix(8)).sock"
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket(AF_UNIX) failed: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw HarnessError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw HarnessError("bind(\(path)) failed: errno \(errno)") }
        let thread = Thread { [self] in self.receiveLoop() }
        thread.start()
    }

    deinit {
        close()
    }

    func close() {
        lock.lock()
        let wasClosed = closed
        closed = true
        lock.unlock()
        if !wasClosed {
            Glibc.shutdown(fd, Int32(SHUT_RDWR))
            Glibc.close(fd)
            unlink(path)
        }
    }

    private func receiveLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            lock.lock()
            let stop = closed
            lock.unlock()
            if stop { return }
            var fds = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&fds, 1, 100) >= 0 else { return }
            guard fds.revents & Int16(POLLIN) != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { continue }
            let text = String(decoding: buffer[0..<count], as: UTF8.self)
            lock.lock()
            received.append(contentsOf: text.split(separator: "\n").map(String.init))
            receivedDatagrams.append(text)
            lock.unlock()
        }
    }

    /// Every assignment received so far (`READY=1`, `STATUS=…`), in order.
    var messages: [String] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// Every datagram received so far, whole (a journal record is one datagram of `FIELD=value` lines).
    var datagrams: [String] {
        lock.lock()
        defer { lock.unlock() }
        return receivedDatagrams
    }

    /// Waits until an assignment satisfying `predicate` has been received.
    @discardableResult
    func waitFor(_ description: String, timeout: Duration = .seconds(30), _ predicate: (String) -> Bool) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let match = messages.first(where: predicate) { return match }
            if ContinuousClock.now >= deadline {
                throw HarnessError.timeout("\(description) on NOTIFY_SOCKET", details: messages.joined(separator: "\n"))
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
