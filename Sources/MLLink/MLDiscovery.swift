import Foundation
import Platform

/// Discovery of the endpoints behind `dns:///name:port` entries of `ml.endpoints`: every address
/// the name resolves to is an endpoint of its own; resolved again every
/// `ml.resolveIntervalSeconds`, addresses that appeared join and addresses that went away leave.
/// A failed resolution keeps the addresses already known.
enum MLDiscovery {
    /// What one resolution of a `dns:///` entry changes among the endpoints it brought.
    struct Changes: Sendable, Equatable {
        /// New addresses, in a stable order (by their text).
        var added: [MLEndpoint]
        var removed: [MLEndpoint]
    }

    /// Compares the addresses a name resolved to with the endpoints `known` from it.
    static func changes(addresses: [String], port: Int, known: Set<MLEndpoint>) -> Changes {
        let wanted = Set(addresses.map { MLEndpoint(host: $0, port: port) })
        return Changes(
            added: wanted.subtracting(known).sorted(by: { $0.description < $1.description }),
            removed: Array(known.subtracting(wanted)))
    }

    /// The addresses `name` resolves to (getaddrinfo, off the cooperative threads).
    static func resolve(_ name: String) async -> [String] {
        await offThePool {
            var seen = Set<String>()
            return Host(name: name).addresses.filter { seen.insert($0).inserted }
        }
    }
}
