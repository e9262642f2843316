import GatewayCore

/// Health checks: `grpc.health.v1.Health/Check` on every endpoint every
/// `ml.healthCheckIntervalSeconds`, where the server offers it.
extension MLEndpointPool {
    func checkHealth() async {
        let members = state.withLock { state in state.balancer.order.compactMap { endpoint in state.members[endpoint].map { (endpoint, $0.client) } } }
        await withTaskGroup(of: (MLEndpoint, MLHealth).self) { group in
            for (endpoint, client) in members {
                group.addTask { (endpoint, await client.checkHealth(timeout: .seconds(2))) }
            }
            for await (endpoint, health) in group {
                let now = ContinuousClock.now
                let (before, change) = state.withLock { state -> (MLHealth??, CircuitBreaker.State?) in
                    guard state.members[endpoint] != nil else { return (nil, nil) }
                    let before = state.members[endpoint]?.health
                    state.members[endpoint]?.health = health
                    // An unreachable endpoint counts against its breaker like a failed call
                    // (only while closed: open and half-open are decided by calls).
                    guard health == .unreachable, state.members[endpoint]!.breaker.state == .closed else { return (.some(before), nil) }
                    return (.some(before), state.members[endpoint]!.breaker.record(failed: true, at: now))
                }
                if let before, before != health {
                    logger.info("ML endpoint health \(health.rawValue)", metadata: ["ml.endpoint": "\(endpoint)", "ml.health": "\(health.rawValue)"])
                }
                if let change { logChange(endpoint, change) }
            }
        }
    }
}
