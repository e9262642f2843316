import Foundation
#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A real 3-node NATS cluster on loopback (Debian's `nats-server`, installed by `scripts/setup`): the
/// clustered cloud broker of the failover tests. Each node runs JetStream (its own store directory)
/// and an MQTT listener whose streams have 3 replicas (`stream_replicas: 3`), so an MQTT session and
/// its QoS 1 messages live on every node and survive the loss of one.
///
/// ```swift
/// let cluster = try NATSCluster(in: sandbox)
/// try await cluster.start()
/// cluster.kill(0)                  // SIGKILL node n1
/// try await cluster.restart(0)     // same ports, same store directory
/// ```
///
/// A JetStream cluster of 3 needs 2 nodes (a quorum) to elect its meta leader and the streams'
/// leaders: with one node alone, MQTT connects fail until a second returns.
///
/// The processes are tracked by the sandbox (ended when the test ends, failed or not) and killed
/// when this object goes away. `@unchecked Sendable`: one test touches it, one call at a time.
public final class NATSCluster: @unchecked Sendable {
    public static let executable = "/usr/sbin/nats-server"

    /// One node: its ports and files.
    public struct Node: Sendable {
        public let name: String
        public let clientPort: Int
        public let clusterPort: Int
        public let monitorPort: Int
        public let mqttPort: Int
        public let configFile: URL
        public let logFile: URL
        public let storeDirectory: URL
    }

    public let nodes: [Node]
    private let sandbox: Sandbox
    private var children: [ChildProcess?]

    public init(in sandbox: Sandbox, size: Int = 3) throws {
        self.sandbox = sandbox
        let directory = try sandbox.makeDirectory("nats")
        // Four ports per node, all distinct: each is held (bound) until every one is chosen, or the
        // kernel could hand out a port just released again.
        var held: [(fd: Int32, port: Int)] = []
        defer { for socket in held { close(socket.fd) } }
        for _ in 0..<(4 * size) { held.append(try FreePort.boundSocket()) }
        let ports = held.map(\.port)
        var nodes: [Node] = []
        for index in 1...size {
            let name = "n\(index)"
            let base = 4 * (index - 1)
            nodes.append(
                Node(
                    name: name, clientPort: ports[base], clusterPort: ports[base + 1], monitorPort: ports[base + 2],
                    mqttPort: ports[base + 3], configFile: directory.appendingPathComponent("\(name).conf"),
                    logFile: directory.appendingPathComponent("\(name).log"),
                    storeDirectory: directory.appendingPathComponent("store-\(name)", isDirectory: true)))
        }
        for node in nodes {
            let routes = nodes.filter { $0.name != node.name }.map { "\"nats-route://127.0.0.1:\($0.clusterPort)\"" }
            let config = """
                server_name: \(node.name)
                listen: 127.0.0.1:\(node.clientPort)
                http: 127.0.0.1:\(node.monitorPort)
                jetstream { store_dir: "\(node.storeDirectory.path)" }
                cluster {
                  name: c
                  listen: 127.0.0.1:\(node.clusterPort)
                  routes: [\(routes.joined(separator: ", "))]
                }
                mqtt {
                  listen: 127.0.0.1:\(node.mqttPort)
                  stream_replicas: 3
                }

                """
            try config.write(to: node.configFile, atomically: true, encoding: .utf8)
        }
        self.nodes = nodes
        children = Array(repeating: nil, count: nodes.count)
    }

    deinit {
        for child in children { child?.kill() }
    }

    /// The MQTT ports, in node order.
    public var mqttPorts: [Int] { nodes.map(\.mqttPort) }

    public func isRunning(_ index: Int) -> Bool { children[index]?.isRunning ?? false }

    /// Starts every node and waits until the cluster serves MQTT (see ``waitUntilReady(_:timeout:)``).
    public func start(timeout: Duration = .seconds(60)) async throws {
        for index in nodes.indices { try launch(index) }
        try await waitUntilReady(Array(nodes.indices), timeout: timeout)
    }

    /// SIGKILL node `index` (and wait until it is reaped): it keeps only what its store wrote.
    public func kill(_ index: Int) {
        children[index]?.kill()
        children[index] = nil
    }

    /// Starts node `index` again (same ports, same store directory) and waits until it is ready.
    public func restart(_ index: Int, timeout: Duration = .seconds(60)) async throws {
        try launch(index)
        try await waitUntilReady([index], timeout: timeout)
    }

    /// Starts the nodes `indices` again without waiting (several together, to regain a quorum).
    public func launchAgain(_ indices: [Int]) throws {
        for index in indices { try launch(index) }
    }

    /// Ends every node (SIGKILL). Idempotent.
    public func shutdown() {
        for index in nodes.indices { kill(index) }
    }

    /// Waits until each of the nodes `indices` accepts MQTT connections and reports a JetStream meta
    /// leader (monitoring `/jsz`), so MQTT sessions can be made.
    public func waitUntilReady(_ indices: [Int], timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        for index in indices {
            let node = nodes[index]
            while true {
                if let child = children[index], !child.isRunning {
                    throw HarnessError("nats node \(node.name) exited (\(child.exit!))\n\(LogFile.tail(node.logFile, lines: 30))")
                }
                if LoopbackAddress.acceptsConnections(port: node.mqttPort), await hasMetaLeader(node) { break }
                if ContinuousClock.now >= deadline {
                    throw HarnessError.timeout("nats node \(node.name) ready (MQTT and a JetStream meta leader)", details: LogFile.tail(node.logFile, lines: 30))
                }
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// Log tails of every node, for a failure message.
    public var diagnostics: String {
        nodes.map { "--- \($0.name)\n" + LogFile.tail($0.logFile, lines: 15) }.joined(separator: "\n")
    }

    private func launch(_ index: Int) throws {
        guard !isRunning(index) else { return }
        let node = nodes[index]
        let child = try ChildProcess(executable: Self.executable, arguments: ["-c", node.configFile.path], outputFile: node.logFile)
        sandbox.track(child)
        children[index] = child
    }

    private func hasMetaLeader(_ node: Node) async -> Bool {
        guard let url = URL(string: "http://127.0.0.1:\(node.monitorPort)/jsz"),
            let (data, _) = try? await URLSession.shared.data(from: url),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let meta = json["meta_cluster"] as? [String: Any],
            let leader = meta["leader"] as? String
        else { return false }
        return !leader.isEmpty
    }
}
