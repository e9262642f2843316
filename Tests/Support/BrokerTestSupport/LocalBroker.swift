import Foundation

/// A mosquitto on a free loopback port for the module tests (MQTT, Registration); the integration
/// tests have a fuller harness. It starts, stops (SIGKILL) and restarts on the same port.
///
/// `@unchecked Sendable`: `process` is only touched by the test that owns the broker, one call at a
/// time (start, stop, deinit); the other stored properties are immutable.
public final class LocalBroker: @unchecked Sendable {
    public let port: Int
    /// A folder of this broker's own, removed with it (for plugin state and the like).
    public let directory: URL
    private var process: Process?

    /// - Parameters:
    ///   - allowAnonymous: whether clients without a username may connect.
    ///   - extraConfig: further global lines (a plugin and its options, say).
    public init(allowAnonymous: Bool = true, extraConfig: (_ directory: URL) throws -> [String] = { _ in [] }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mqtt-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        let lines = ["listener \(port) 127.0.0.1", "allow_anonymous \(allowAnonymous)", "user root"] + (try extraConfig(directory))
        try lines.joined(separator: "\n").appending("\n")
            .write(to: directory.appendingPathComponent("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: directory)
    }

    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", directory.appendingPathComponent("mosquitto.conf").path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        for _ in 0..<100 {
            if Self.accepts(port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("mosquitto did not listen on \(port)")
    }

    /// Kills the broker (SIGKILL: a child started from a Swift concurrency thread inherits a
    /// signal mask that blocks SIGTERM, so terminate() would not stop it).
    public func stop() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        self.process = nil
    }

    public static func freePort() throws -> Int {
        let (fd, port) = try boundSocket()
        close(fd)
        return port
    }

    /// A TCP socket bound to a free port on 127.0.0.1; the caller closes it (or listens on it).
    public static func boundSocket() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            close(fd)
            throw TestFailure("no free port")
        }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    public static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// A test set-up step that failed, with what to look at.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
