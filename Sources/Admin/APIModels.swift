import MLLink
import Registration

/// One ML endpoint in `GET /api/ml/endpoints`.
struct EndpointSummary: Codable, Equatable {
    var endpoint: String
    var source: String
    /// `closed`, `open` or `half-open`.
    var breaker: String
    /// `serving`, `not serving`, `not offered`, `unreachable`, or absent before the first check.
    var health: String?
    var outstanding: Int

    init(_ status: MLEndpointPool.EndpointStatus) {
        endpoint = "\(status.endpoint)"
        source = status.source
        breaker = status.breaker.rawValue
        health = status.health?.rawValue
        outstanding = status.outstanding
    }
}

/// One registration in `GET /api/registrations` (those in `needs-attention`).
struct RegistrationSummary: Codable, Equatable {
    var requestId: String
    var deviceId: String
    var userId: String
    var state: String
    var reason: String?
    /// Steps whose compensation kept failing: what a person has to undo by hand.
    var compensationFailed: [String]
    var completed: [String]

    init(_ record: SagaStore.Record) {
        requestId = record.request.requestID
        deviceId = record.request.device.rawValue
        userId = record.request.userID
        state = record.state.rawValue
        reason = record.reason
        compensationFailed = record.compensationFailed.map(\.rawValue)
        completed = record.done.map(\.rawValue)
    }
}
