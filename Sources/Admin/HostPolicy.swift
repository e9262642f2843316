import Foundation

/// The names under which the admin API is the hub's: what a request's `Host` and `Origin` may
/// name. A browser sends the name it resolved in `Host`, so a page whose own name was rebound to
/// the hub's address (DNS rebinding) is told apart here, and a page of another site names itself
/// in `Origin`.
///
/// Allowed: `localhost`, `127.0.0.1`, `::1`, the machine's host name and `<host name>.local`,
/// `hub.id`, the listen address `admin.host` when it is a concrete one, and `admin.allowedHosts`.
/// Names compare case-insensitively, without a trailing dot; the port of `Host` is ignored.
public struct HostPolicy: Sendable, Equatable {
    public let names: Set<String>

    public init(configuration: AdminConfiguration, hubID: String, hostName: String = HostPolicy.machineHostName()) {
        var names: Set<String> = ["localhost", "127.0.0.1", "::1"]
        let host = Self.normalize(hostName)
        if !host.isEmpty {
            names.insert(host)
            // `raspberrypi.lan` also answers as `raspberrypi`; mDNS adds `.local`.
            let short = host.split(separator: ".").first.map(String.init) ?? host
            names.insert(short)
            names.insert(short + ".local")
        }
        if !hubID.isEmpty {
            names.insert(Self.normalize(hubID))
        }
        let listen = Self.normalize(configuration.host)
        if !Self.isWildcard(listen) { names.insert(listen) }
        for extra in configuration.allowedHosts {
            let name = Self.normalize(extra)
            if !name.isEmpty { names.insert(name) }
        }
        self.names = names
    }

    /// The kernel's host name (`/proc/sys/kernel/hostname`, no DNS lookup); elsewhere Foundation's.
    public static func machineHostName() -> String {
        if let name = try? String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8) {
            return name.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return ProcessInfo.processInfo.hostName
    }

    /// Whether a `Host` header (or `:authority`) names the hub; its port does not matter.
    public func allowsHost(_ header: String) -> Bool {
        guard let (host, _) = Self.split(authority: header) else { return false }
        return names.contains(host)
    }

    /// Whether an `Origin` header is the hub's own page: `http` or `https`, an allowed host, and
    /// the port the request was sent to (`requestHost`, its `Host` header; without a port the
    /// scheme's default), so a page on another port of an allowed name is still foreign.
    /// `Origin: null` (sandboxed frames, `file:` pages, some redirects) is foreign. Non-browser
    /// WebSocket clients name their `ws:`/`wss:` URL (no browser page has such an origin): an
    /// allowed host suffices there.
    public func allowsOrigin(_ origin: String, requestHost: String?) -> Bool {
        let text = origin.trimmingCharacters(in: .whitespaces).lowercased()
        let scheme: String
        let defaultPort: Int?
        if text.hasPrefix("http://") {
            (scheme, defaultPort) = ("http://", 80)
        } else if text.hasPrefix("https://") {
            (scheme, defaultPort) = ("https://", 443)
        } else if text.hasPrefix("ws://") || text.hasPrefix("wss://") {
            (scheme, defaultPort) = (text.hasPrefix("ws://") ? "ws://" : "wss://", nil)
        } else {
            return false
        }
        let authority = text.dropFirst(scheme.count)
        guard !authority.contains("/"), let (host, port) = Self.split(authority: String(authority)), names.contains(host) else {
            return false
        }
        guard let defaultPort else { return true }
        guard let requestHost, let (_, requestPort) = Self.split(authority: requestHost) else { return false }
        return (port ?? defaultPort) == (requestPort ?? defaultPort)
    }

    /// `host[:port]`, `[v6]:port` or a bare IPv6 address into a normalized host and its port.
    static func split(authority: String) -> (host: String, port: Int?)? {
        let text = authority.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty, !text.contains("@") else { return nil }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            let host = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            if rest.isEmpty { return (normalize(host), nil) }
            guard rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (0...65535).contains(port) else { return nil }
            return (normalize(host), port)
        }
        let colons = text.filter { $0 == ":" }.count
        if colons > 1 { return (normalize(text), nil) }  // a bare IPv6 address
        if colons == 1, let colon = text.firstIndex(of: ":") {
            guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
            return (normalize(String(text[..<colon])), port)
        }
        return (normalize(text), nil)
    }

    static func normalize(_ name: String) -> String {
        var name = name.trimmingCharacters(in: .whitespaces).lowercased()
        if name.hasPrefix("["), name.hasSuffix("]") { name = String(name.dropFirst().dropLast()) }
        while name.hasSuffix(".") { name.removeLast() }
        return name
    }

    static func isWildcard(_ host: String) -> Bool {
        host.isEmpty || host == "0.0.0.0" || host == "::" || host == "*"
    }

    /// Whether `admin.host` keeps the API on this machine: `localhost`, 127.0.0.0/8 or `::1`.
    public static func isLoopback(_ host: String) -> Bool {
        let host = normalize(host)
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}
