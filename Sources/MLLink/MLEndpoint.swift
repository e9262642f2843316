/// One ML service endpoint and how the gateway talks to it.
public struct MLEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// What the endpoint speaks.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// `edge.ml.v1.MLService` over gRPC (CONTRACTS.md §3).
        case grpc
        /// The Wyoming protocol (CONTRACTS.md §8), plain TCP.
        case wyoming
    }

    public var host: String
    public var port: Int
    public var kind: Kind

    public init(host: String, port: Int, kind: Kind = .grpc) {
        self.host = host
        self.port = port
        self.kind = kind
    }

    /// Parses `host:port` (an IPv6 literal in brackets: `[::1]:50051`).
    public init?(_ text: String, kind: Kind = .grpc) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains("/"), !host.contains("[") else { return nil }
        self.init(host: host, port: port, kind: kind)
    }

    /// `host:port` for gRPC, `wyoming://host:port` for Wyoming (in logs, the `endpoint` label of the
    /// metrics, `/api/ml/endpoints` and `DialogCompleted.mlEndpoint`).
    public var description: String {
        let address = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return kind == .wyoming ? "wyoming://\(address)" : address
    }
}
