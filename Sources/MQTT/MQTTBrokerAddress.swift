import Foundation

/// One address of an MQTT broker: a host name or IP address and a port, or the path of a Unix
/// domain socket (a broker on the same machine). IPv6 addresses are written in brackets
/// (`[::1]:1883`) and kept without them in ``host`` (what libmosquitto takes).
public struct MQTTBrokerAddress: Sendable, Hashable, CustomStringConvertible {
    /// The host name or IP address, or the socket's path (``isUnixSocket``).
    public var host: String
    /// The TCP port; 0 for a Unix domain socket (libmosquitto's way of saying so).
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// A broker's Unix domain socket (an absolute path).
    public init(unixSocket path: String) {
        self.host = path
        self.port = 0
    }

    /// The most bytes of a socket path (`sun_path` holds 108 with its terminating NUL).
    public static let maxUnixSocketPathBytes = 107

    /// Whether this is a Unix domain socket: no TCP, so no TCP options (`TCP_NODELAY`, corking).
    public var isUnixSocket: Bool { port == 0 && host.hasPrefix("/") }

    /// `host:port`, `[v6]:port`, or `unix:PATH`.
    public var description: String {
        if isUnixSocket { return "unix:\(host)" }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Parses `host:port`, `host`, `[v6]:port` or `[v6]`; a missing port is `defaultPort`.
    /// Returns the address, or what is wrong with the text.
    public static func parse(_ text: String, defaultPort: Int) -> Result<MQTTBrokerAddress, ParseError> {
        let text = text.trimmingCharacters(in: .whitespaces)
        let host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(ParseError("'\(text)': an IPv6 address needs its closing ']'")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.first == ":" else { return .failure(ParseError("'\(text)': expected ':port' after ']'")) }
                portText = rest.dropFirst()
            }
            guard !host.isEmpty, host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }), host.contains(":") else {
                return .failure(ParseError("'\(text)': '\(host)' is not an IPv6 address"))
            }
        } else {
            let colons = text.filter { $0 == ":" }.count
            if colons > 1 {
                return .failure(ParseError("'\(text)': write an IPv6 address in brackets, e.g. [::1]:1883"))
            }
            if let colon = text.firstIndex(of: ":") {
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            } else {
                host = text[...]
            }
            guard !host.isEmpty else { return .failure(ParseError("'\(text)': the host is empty")) }
            guard host.utf8.count <= 253, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "_") }) else {
                return .failure(ParseError("'\(text)': '\(host)' is not a host name or IPv4 address"))
            }
        }
        var port = defaultPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                return .failure(ParseError("'\(text)': the port must be a number in 1...65535"))
            }
            port = value
        }
        return .success(MQTTBrokerAddress(host: String(host), port: port))
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}

/// Where a client with several broker addresses starts.
public enum MQTTAddressOrder: String, Sendable, CaseIterable {
    /// At the first address; on a failure the next one, wrapping around.
    case ordered
    /// At a random address, then the same rotation: a fleet of hubs spreads over the nodes.
    case random
}
