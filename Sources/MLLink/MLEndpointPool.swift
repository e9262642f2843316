import Logging
import Synchronization

/// The ML service behind several endpoints: each call goes to the next endpoint whose breaker
/// lets it through (round robin), a retriable failure of `AnalyzeIntent` is tried once more on
/// another endpoint, and when every breaker is open the call fails at once instead of waiting
/// for deadlines.
///
/// Breaker state changes are logged at info (`ml.endpoint`, `ml.breaker`).
public final class MLEndpointPool: Sendable {
    public let clients: [MLClient]
    private let state: Mutex<State>
    private let logger: Logger

    struct State {
        var breakers: [CircuitBreaker]
        var next = 0
    }

    public init(clients: [MLClient], breaker: CircuitBreaker.Configuration = .init(), logger: Logger) {
        precondition(!clients.isEmpty, "an ML endpoint pool needs at least one endpoint")
        self.clients = clients
        self.logger = logger
        state = Mutex(State(breakers: Array(repeating: CircuitBreaker(configuration: breaker), count: clients.count)))
    }

    /// Runs every endpoint's connections until ``shutDown()``.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for client in clients {
                group.addTask { try await client.run() }
            }
        }
    }

    /// Lets calls under way finish and closes every endpoint's connections.
    public func shutDown() {
        for client in clients { client.shutDown() }
    }

    /// The breaker state of each endpoint, in configuration order (for status and metrics).
    public var breakerStates: [(endpoint: MLEndpoint, state: CircuitBreaker.State)] {
        state.withLock { state in clients.indices.map { (clients[$0].endpoint, state.breakers[$0].state) } }
    }

    /// `AnalyzeIntent` on a healthy endpoint; a retriable failure is tried on one other endpoint
    /// (the request has no side effects). Fails with `unavailable` at once when no breaker lets a
    /// call through.
    public func analyzeIntent(
        text: String, context: [String: String] = [:], deviceID: String, userID: String
    ) async throws(MLError) -> IntentAnalysis {
        var tried: Set<Int> = []
        var lastError: MLError?
        for _ in 0..<2 {
            guard let index = pick(excluding: tried) else { break }
            tried.insert(index)
            do {
                let analysis = try await clients[index].analyzeIntent(
                    text: text, context: context, deviceID: deviceID, userID: userID)
                record(index, failed: false)
                return analysis
            } catch {
                record(index, failed: error.isRetriable)
                guard error.isRetriable else { throw error }
                lastError = error
            }
        }
        throw lastError ?? MLError(.unavailable, "every ML endpoint's circuit breaker is open")
    }

    /// The next endpoint, round robin, whose breaker lets a call through now.
    private func pick(excluding tried: Set<Int>) -> Int? {
        let now = ContinuousClock.now
        let (index, change) = state.withLock { state -> (Int?, CircuitBreaker.State?) in
            for offset in 0..<clients.count {
                let index = (state.next + offset) % clients.count
                guard !tried.contains(index) else { continue }
                let before = state.breakers[index].state
                if state.breakers[index].allowsCall(at: now) {
                    state.next = index + 1
                    let after = state.breakers[index].state
                    return (index, after != before ? after : nil)
                }
            }
            return (nil, nil)
        }
        if let index, let change { logChange(index, change) }
        return index
    }

    private func record(_ index: Int, failed: Bool) {
        let change = state.withLock { $0.breakers[index].record(failed: failed, at: .now) }
        if let change { logChange(index, change) }
    }

    private func logChange(_ index: Int, _ state: CircuitBreaker.State) {
        logger.info(
            "ML endpoint circuit breaker \(state.rawValue)",
            metadata: ["ml.endpoint": "\(clients[index].endpoint)", "ml.breaker": "\(state.rawValue)"])
    }
}
