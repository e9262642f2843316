import Foundation
import HTTPTestSupport
import Hummingbird
import Logging
import HummingbirdTesting
import Synchronization
import Testing

@testable import Admin

/// The admin API's trust boundary (issue 12, item 6) against the real server over real TCP on
/// loopback: what a web page on the LAN, a rebound DNS name or a flood of sockets can do to it.
@Suite(.timeLimit(.minutes(1))) struct AdminBoundaryTests {
    static let upgradeHeaders = [
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
    ]

    /// A running admin server with `configure`d settings; `body` gets its port.
    static func withServer(
        token: String? = nil, _ configure: (inout AdminConfiguration) -> Void = { _ in },
        _ body: @Sendable (Int, AdminServerTests.World) async throws -> Void
    ) async throws {
        let world = AdminServerTests.World()
        let server = AdminServerTests.makeServer(world: world, token: token, configure: configure)
        try await server.makeApplication().test(.live) { client in
            // The test framework's own client holds a connection: make sure it is open (and counted).
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
            try await body(try #require(client.port), world)
        }
    }

    // MARK: - Host (DNS rebinding)

    @Test(arguments: [
        ("localhost", true), ("LOCALHOST:8080", true), ("127.0.0.1:1", true), ("[::1]:8080", true), ("::1", true),
        ("hub-7", true), ("hub-7.", true), ("pi4", true), ("pi4.local", true), ("pi4.lan", true), ("admin.example.net", true),
        ("192.168.1.20:8080", true),
        ("evil.example", false), ("evil.example:8080", false), ("127.0.0.2", false), ("localhost.evil.example", false),
        ("hub-7.evil.example", false), ("", false), ("user@localhost", false), ("localhost:99999", false), ("[::1", false),
    ])
    func hostHeaderMustNameTheHub(host: String, allowed: Bool) {
        var configuration = AdminConfiguration()
        configuration.host = "192.168.1.20"
        configuration.allowedHosts = ["Admin.Example.NET"]
        let policy = HostPolicy(configuration: configuration, hubID: "hub-7", hostName: "pi4.lan")
        #expect(policy.allowsHost(host) == allowed, "\(host)")
    }

    @Test(arguments: [
        ("http://127.0.0.1:8080", "127.0.0.1:8080", true), ("https://localhost", "localhost", true),
        ("http://localhost", "localhost:80", true), ("http://[::1]:8080", "[::1]:8080", true),
        ("http://evil.example", "127.0.0.1:8080", false), ("https://evil.example:8080", "127.0.0.1:8080", false),
        ("null", "127.0.0.1:8080", false), ("file://", "127.0.0.1:8080", false), ("http://127.0.0.1:3000", "127.0.0.1:8080", false),
        ("ftp://127.0.0.1:8080", "127.0.0.1:8080", false), ("http://127.0.0.1:8080/x", "127.0.0.1:8080", false),
        ("http://localhost", "localhost:8080", false),
        // Non-browser WebSocket clients (swift-websocket, websocket-client) name their ws: URL.
        ("ws://127.0.0.1", "127.0.0.1:8080", true), ("wss://localhost:9", "localhost:8080", true), ("ws://evil.example", "127.0.0.1:8080", false),
    ])
    func originMustBeTheHubsOwnPage(origin: String, host: String, allowed: Bool) {
        let policy = HostPolicy(configuration: AdminConfiguration(), hubID: "hub-7", hostName: "pi4")
        #expect(policy.allowsOrigin(origin, requestHost: host) == allowed, "\(origin) for \(host)")
    }

    @Test func theListenAddressCountsOnlyWhenItIsConcrete() {
        var configuration = AdminConfiguration()
        configuration.host = "0.0.0.0"
        #expect(!HostPolicy(configuration: configuration, hubID: "h", hostName: "pi").allowsHost("0.0.0.0"))
        configuration.host = "10.0.0.5"
        #expect(HostPolicy(configuration: configuration, hubID: "h", hostName: "pi").allowsHost("10.0.0.5:8080"))
    }

    @Test(arguments: [
        ("127.0.0.1", true), ("127.1.2.3", true), ("localhost", true), ("::1", true), ("[::1]", true),
        ("0.0.0.0", false), ("::", false), ("192.168.1.20", false), ("127.example.com", false), ("hub.local", false),
    ])
    func loopbackAddresses(host: String, loopback: Bool) {
        #expect(HostPolicy.isLoopback(host) == loopback, "\(host)")
    }

    @Test func aForeignHostGets421OnEveryRouteEvenWithTheToken() async throws {
        try await Self.withServer(token: "t0ken") { port, _ in
            try await RawHTTPConnection.with(port: port) { connection in
                for path in ["/", "/api/outbox", "/metrics", "/healthz", "/readyz", "/api/status"] {
                    let reply = try await connection.request(path, host: "evil.example:\(port)", headers: ["Authorization: Bearer t0ken"])
                    #expect(reply.status == 421, "\(path): \(reply.head)")
                }
            }
            // A request without Host at all (HTTP/1.0 style) names nothing: refused as well.
            try await RawHTTPConnection.with(port: port) { connection in
                try await connection.send("GET /healthz HTTP/1.0\r\n\r\n")
                #expect(try await connection.readReply().status == 421)
            }
            // The hub's own names still work.
            try await RawHTTPConnection.with(port: port) { connection in
                for host in ["127.0.0.1:\(port)", "localhost:\(port)", "[::1]:\(port)"] {
                    let reply = try await connection.request("/api/outbox", host: host, headers: ["Authorization: Bearer t0ken"])
                    #expect(reply.status == 200, "\(host): \(reply.head)")
                }
            }
        }
    }

    @Test func adminAllowedHostsAddsNames() async throws {
        try await Self.withServer({ $0.allowedHosts = ["hub.example.net"] }) { port, _ in
            try await RawHTTPConnection.with(port: port) { connection in
                let allowed = try await connection.request("/healthz", host: "hub.example.net")
                let other = try await connection.request("/healthz", host: "other.example.net")
                #expect(allowed.status == 200)
                #expect(other.status == 421)
            }
        }
    }

    // MARK: - Origin (CSRF) and content type

    @Test func crossSitePostWithTextPlainRegistersNothing() async throws {
        try await Self.withServer { port, world in
            let body = #"{"deviceId": "evil-1", "userId": "u1", "type": "lamp"}"#
            try await RawHTTPConnection.with(port: port) { connection in
                // What a page on evil.example can send without a CORS preflight.
                let reply = try await connection.request(
                    "POST", "/api/devices", host: "127.0.0.1:\(port)",
                    headers: ["Origin: http://evil.example", "Content-Type: text/plain"], body: body)
                #expect(reply.status == 403, "\(reply.head)")
                let nullOrigin = try await connection.request(
                    "POST", "/api/devices", host: "127.0.0.1:\(port)", headers: ["Origin: null", "Content-Type: application/json"], body: body)
                #expect(nullOrigin.status == 403)
                let sameHostOtherPort = try await connection.request(
                    "POST", "/api/devices", host: "127.0.0.1:\(port)",
                    headers: ["Origin: http://127.0.0.1:\(port == 1 ? 2 : port - 1)", "Content-Type: application/json"], body: body)
                #expect(sameHostOtherPort.status == 403)
                // Without Origin (curl), only the media type stops it.
                for type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonx"] {
                    let reply = try await connection.request("POST", "/api/devices", host: "127.0.0.1:\(port)", headers: ["Content-Type: \(type)"], body: body)
                    #expect(reply.status == 415, "\(type): \(reply.head)")
                }
                let untyped = try await connection.request("POST", "/api/devices", host: "127.0.0.1:\(port)", body: body)
                #expect(untyped.status == 415)
            }
            #expect(world.registered.withLock { $0.isEmpty })
        }
    }

    @Test func theHubsOwnPageAndCurlStillRegister() async throws {
        try await Self.withServer { port, world in
            try await RawHTTPConnection.with(port: port) { connection in
                let fromPage = try await connection.request(
                    "POST", "/api/devices", host: "127.0.0.1:\(port)",
                    headers: ["Origin: http://127.0.0.1:\(port)", "Content-Type: application/json; charset=utf-8"],
                    body: #"{"deviceId": "lamp-1", "userId": "u1", "type": "lamp"}"#)
                #expect(fromPage.status == 201, "\(fromPage.head)")
                let fromCurl = try await connection.request(
                    "POST", "/api/devices", host: "localhost:\(port)", headers: ["Content-Type: Application/JSON"],
                    body: #"{"deviceId": "lamp-2", "userId": "u1", "type": "lamp"}"#)
                #expect(fromCurl.status == 201, "\(fromCurl.head)")
            }
            #expect(world.registered.withLock { $0.map(\.0.rawValue) } == ["lamp-1", "lamp-2"])
        }
    }

    @Test func crossSiteWebSocketUpgradeIsRefusedWith403NotSwitched() async throws {
        try await Self.withServer { port, _ in
            try await RawHTTPConnection.with(port: port) { connection in
                let reply = try await connection.request(
                    "/live", host: "127.0.0.1:\(port)", headers: Self.upgradeHeaders + ["Origin: http://evil.example"])
                #expect(reply.status == 403, "\(reply.head)")
            }
            try await RawHTTPConnection.with(port: port) { connection in
                let reply = try await connection.request("/live", host: "evil.example", headers: Self.upgradeHeaders)
                #expect(reply.status == 421, "\(reply.head)")
            }
            // The hub's own page is switched.
            try await RawHTTPConnection.with(port: port) { connection in
                let reply = try await connection.request(
                    "/live", host: "127.0.0.1:\(port)", headers: Self.upgradeHeaders + ["Origin: http://127.0.0.1:\(port)"])
                #expect(reply.status == 101, "\(reply.head)")
            }
        }
    }

    @Test func theQueryTokenOpensOnlyTheWebSocket() async throws {
        try await Self.withServer(token: "q-token") { port, _ in
            try await RawHTTPConnection.with(port: port) { connection in
                for path in ["/api/outbox", "/api/status", "/metrics", "/api/devices"] {
                    let reply = try await connection.request(path + "?access_token=q-token", host: "127.0.0.1:\(port)")
                    #expect(reply.status == 401, "\(path)")
                }
            }
            try await RawHTTPConnection.with(port: port) { connection in
                let reply = try await connection.request("/live?access_token=q-token", host: "127.0.0.1:\(port)", headers: Self.upgradeHeaders)
                #expect(reply.status == 101, "\(reply.head)")
            }
        }
    }

    // MARK: - Connections

    // Without the timeout the read would wait for ever: the limit turns that into a failure.
    @Test(.timeLimit(.minutes(1))) func aSlowlorisConnectionThatSendsNothingIsClosedAfterTheIdleTimeout() async throws {
        try await Self.withServer({ $0.idleTimeout = .seconds(1) }) { port, _ in
            let received = try await RawHTTPConnection.with(port: port) { try await $0.readUntilClosed() }
            #expect(received.isEmpty)
        }
    }

    // Without the timeout the read would wait for ever: the limit turns that into a failure.
    @Test(.timeLimit(.minutes(1))) func aRequestHeadDrippedTooSlowlyIsClosed() async throws {
        try await Self.withServer({ $0.idleTimeout = .seconds(1) }) { port, _ in
            let received = try await RawHTTPConnection.with(port: port) { connection in
                try await connection.send("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
                return try await connection.readUntilClosed()
            }
            #expect(received.isEmpty)
        }
    }

    // Without the timeout the read would wait for ever: the limit turns that into a failure.
    @Test(.timeLimit(.minutes(1))) func aKeptAliveConnectionIdleBetweenRequestsIsClosed() async throws {
        try await Self.withServer({ $0.idleTimeout = .seconds(1) }) { port, _ in
            try await RawHTTPConnection.with(port: port) { connection in
                let reply = try await connection.request("/healthz")
                let rest = try await connection.readUntilClosed()
                #expect(reply.status == 200)
                #expect(rest.isEmpty)
            }
        }
    }

    // Without the timeout the read would wait for ever: the limit turns that into a failure.
    @Test(.timeLimit(.minutes(1))) func aConnectionFloodIsCappedAndTheFirstConnectionsKeepWorking() async throws {
        // Three: the test framework's client holds one.
        try await Self.withServer({ $0.maxConnections = 3 }) { port, _ in
            try await RawHTTPConnection.with(port: port) { first in
                #expect(try await first.request("/healthz").status == 200)
                try await RawHTTPConnection.with(port: port) { second in
                    #expect(try await second.request("/healthz").status == 200)
                    // Both are open and counted: a third is closed without an answer.
                    for _ in 0..<3 {
                        let received = try await RawHTTPConnection.answerBeforeClose(
                            port: port, sending: "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                        #expect(received.isEmpty)
                    }
                    #expect(try await first.request("/healthz").status == 200)
                    #expect(try await second.request("/api/outbox").status == 200)
                }
            }
            // Closed ones make room again (the count follows the close; await it by retrying).
            var status = 0
            for _ in 0..<100 where status != 200 {
                status = (try? await RawHTTPConnection.with(port: port) { try await $0.request("/healthz").status }) ?? 0
                if status != 200 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(status == 200)
        }
    }
}

/// Refusals are logged at warning at most once per reason and interval, so a flood cannot fill the
/// journal; the ones in between go to debug and are counted in the next warning.
@Suite struct AdminRejectionsLogTests {
    final class Captured: LogHandler, @unchecked Sendable {
        // Only touched from the test's task.
        var entries: [(Logger.Level, String, Logger.Metadata)] = []
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { entries.append((event.level, "\(event.message)", event.metadata ?? [:])) }
    }

    @Test func aFloodOfRefusalsLogsOneWarningPerReasonAndInterval() {
        let captured = Captured()
        let rejections = AdminRejections(logger: Logger(label: "test") { _ in captured })
        let start = ContinuousClock.now
        for second in [0, 1, 2, 3] {
            rejections.reject(.misdirectedHost, "refused", now: start + .seconds(second))
        }
        rejections.reject(.foreignOrigin, "refused origin", now: start + .seconds(3))
        rejections.reject(.misdirectedHost, "refused", now: start + AdminRejections.logInterval + .seconds(1))
        let levels = captured.entries.map(\.0)
        #expect(levels == [.warning, .debug, .debug, .debug, .warning, .warning])
        #expect(captured.entries.allSatisfy { $0.2["reason"] != nil })
        #expect(captured.entries.last?.2["rejected.since_last_warning"] == "3")
    }
}
