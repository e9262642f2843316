import BrokerTestSupport
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on 127.0.0.1 that accepts every connection and never sends a byte: to an MQTT client it is a
/// broker that takes the TCP connection but never answers CONNECT (no CONNACK, ever).
///
/// What clients send is read and thrown away (so closing never resets a connection with unread data); a
/// connection the client closes is closed here too. `stop()` closes the listener and every open connection and
/// frees the port; it also runs when the object goes away, so a failing test leaves no listener behind.
final class SilentTCPServer: Sendable {
    let port: Int
    private let state: State

    /// Listens on 127.0.0.1:`port` (SO_REUSEADDR, so a port a broker just left can be taken at once).
    init(port: Int) throws {
        self.port = port
        let (fd, _) = try FreePort.boundSocket(port: port, reuseAddress: true)
        guard listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            throw HarnessError.system("listen", code)
        }
        // The thread holds only the state, so this object can go away (and stop the thread) while it runs.
        let state = State(listener: fd)
        self.state = state
        let thread = Thread { state.serve() }
        thread.name = "silent-tcp-\(port)"
        thread.start()
    }

    deinit {
        state.stop()
    }

    /// Connections accepted so far.
    var acceptedConnections: Int { state.counters.accepted }

    /// Bytes clients sent (and got no answer to).
    var receivedBytes: Int { state.counters.bytes }

    /// Closes the listener and every connection. Idempotent; returns once the port is free.
    func stop() {
        state.stop()
    }

    /// Waits until at least `count` connections have been accepted.
    func waitForConnections(_ count: Int, timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        while acceptedConnections < count {
            if ContinuousClock.now >= deadline {
                throw HarnessError.timeout("\(count) connections to the silent server on \(port) (accepted \(acceptedConnections))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private final class State: @unchecked Sendable {
        let listener: Int32
        private let lock = NSLock()
        private var stopRequested = false
        private var accepted = 0
        private var bytes = 0
        private let finished = DispatchSemaphore(value: 0)

        init(listener: Int32) {
            self.listener = listener
        }

        var counters: (accepted: Int, bytes: Int) {
            lock.lock()
            defer { lock.unlock() }
            return (accepted, bytes)
        }

        private var isStopRequested: Bool {
            lock.lock()
            defer { lock.unlock() }
            return stopRequested
        }

        func stop() {
            lock.lock()
            let first = !stopRequested
            stopRequested = true
            lock.unlock()
            // Only the first caller waits; the thread signals once.
            if first { finished.wait() }
        }

        /// The server thread: accept, read and discard, close what the peer closed; every descriptor is closed here.
        func serve() {
            var connections: [Int32] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while !isStopRequested {
                var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
                    + connections.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                let ready = poll(&fds, nfds_t(fds.count), 100)
                if ready < 0 {
                    if errno == EINTR { continue }
                    break
                }
                if ready == 0 { continue }
                if fds[0].revents & Int16(POLLIN) != 0 {
                    let connection = accept(listener, nil, nil)
                    if connection >= 0 {
                        connections.append(connection)
                        lock.lock()
                        accepted += 1
                        lock.unlock()
                    }
                }
                var closed: Set<Int32> = []
                for entry in fds.dropFirst() where entry.revents != 0 {
                    let count = buffer.withUnsafeMutableBytes { recv(entry.fd, $0.baseAddress, $0.count, 0) }
                    if count > 0 {
                        lock.lock()
                        bytes += count
                        lock.unlock()
                    } else if count == 0 || (errno != EAGAIN && errno != EINTR) {
                        close(entry.fd)
                        closed.insert(entry.fd)
                    }
                }
                connections.removeAll { closed.contains($0) }
            }
            close(listener)
            for connection in connections { close(connection) }
            finished.signal()
        }
    }
}
