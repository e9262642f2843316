import BrokerTestSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The daemon's admin API over HTTP on loopback, as an operator's script would use it.
struct AdminClient {
    let port: Int
    var token: String?

    struct Reply {
        let status: Int
        let body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: Any? { try? JSONSerialization.jsonObject(with: body) }
    }

    func get(_ path: String, token: String?? = .none) async throws -> Reply {
        try await send("GET", path, body: nil, token: token)
    }

    func post(_ path: String, json: String, token: String?? = .none) async throws -> Reply {
        try await send("POST", path, body: Data(json.utf8), token: token)
    }

    func delete(_ path: String, token: String?? = .none) async throws -> Reply {
        try await send("DELETE", path, body: nil, token: token)
    }

    private func send(_ method: String, _ path: String, body: Data?, token: String??) async throws -> Reply {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.httpBody = body
        request.timeoutInterval = 30
        // A connection of its own for every call, as an operator's curl makes: URLSession.shared
        // keeps connections by host and port for the whole test run, and ports come round again
        // (a pooled one reused as its server closed it was reset: CI, WyomingDialogTests).
        request.setValue("close", forHTTPHeaderField: "Connection")
        if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        let chosen: String? = switch token { case .none: self.token; case .some(let explicit): explicit }
        if let chosen { request.setValue("Bearer \(chosen)", forHTTPHeaderField: "Authorization") }
        let (data, response) = try await URLSession.shared.data(for: request)
        return Reply(status: (response as? HTTPURLResponse)?.statusCode ?? 0, body: data)
    }

    /// Polls `/metrics` until `line` (a sample line's start) is there with a value `condition` accepts.
    func waitForMetric(_ name: String, timeout: Duration = .seconds(20), _ condition: (Double) -> Bool) async throws -> Double {
        let deadline = ContinuousClock.now + timeout
        var last = "-"
        while ContinuousClock.now < deadline {
            let metrics = try await get("/metrics").text
            if let value = Self.value(of: name, in: metrics) {
                last = "\(value)"
                if condition(value) { return value }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw HarnessError("metric \(name) never satisfied the condition (last: \(last))")
    }

    /// The value of the sample whose name and labels are exactly `name` (e.g. `foo{reason="x"}`).
    static func value(of name: String, in metrics: String) -> Double? {
        for line in metrics.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
