import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Finds TCP ports on 127.0.0.1 that nothing listens on: the one free-port helper of the Swift tests.
///
/// The kernel picks the port (bind to port 0); the socket is closed before the port is returned, so another
/// process could take it in between. That race is acceptable for tests: a clash makes the broker fail to
/// start with a clear log line rather than making a test pass wrongly.
public enum FreePort {
    public static func next() throws -> Int {
        let (fd, port) = try boundSocket()
        close(fd)
        return port
    }

    /// A TCP socket bound to a free port on 127.0.0.1 (or to `port`), for a test that needs the port
    /// held (a server that listens and never answers, say); the caller closes it (or listens on it).
    /// `reuseAddress`: SO_REUSEADDR, so a port a broker just left can be taken at once.
    public static func boundSocket(port: Int = 0, reuseAddress: Bool = false) throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError.system("socket", errno) }
        if reuseAddress {
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }

        var address = LoopbackAddress.make(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw HarnessError.system("bind(127.0.0.1:\(port))", code)
        }

        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let code = errno
            close(fd)
            throw HarnessError.system("getsockname", code)
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }
}
