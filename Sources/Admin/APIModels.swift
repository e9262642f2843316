import BuildInfo
import Foundation
import MLLink
import Outbox

/// `GET /api`: which daemon answers, and what else the API offers.
struct APIIndex: Encodable {
    var version = GatewayVersion.version
    var commit = GatewayVersion.commit
    var hubId: String
    /// `store.path` as configured (the CLI checks it is talking to the daemon of its configuration).
    var storePath: String
    /// When the daemon started (ms since the epoch) and how long ago, in seconds.
    var startedAt: Int64
    var uptimeSeconds: Int64
    var routes = [
        "GET /api/status", "GET /api/outbox?devices=N", "GET /api/outbox/peek?device=&limit=", "GET /api/devices", "POST /api/devices", "GET /api/registrations",
        "GET /api/ml/endpoints", "GET /api/commands?device=ID", "POST /api/commands", "DELETE /api/commands/{deviceId}/{commandId}",
        "GET /api/shadows/{deviceId}",
        "GET /metrics", "GET /healthz", "GET /readyz", "WS /live",
    ]

    init(hubID: String, storePath: String = "", startedMs: Int64, nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) {
        hubId = hubID
        self.storePath = storePath
        startedAt = startedMs
        uptimeSeconds = max(0, (nowMs - startedMs) / 1000)
    }
}
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
    /// What it offers: `transcription`, `intent`.
    var offers: [String]
    /// A Wyoming server's last `info`: absent for gRPC endpoints and before its first `describe`.
    var wyoming: WyomingSummary?

    struct WyomingSummary: Codable, Equatable {
        /// `asr`, `intent`, `handle`, `tts`, `wake`.
        var services: [String]
        var programs: [String]
        var models: [String]
        var languages: [String]
        var streamsTranscripts: Bool
    }

    init(_ status: MLEndpointPool.EndpointStatus) {
        endpoint = "\(status.endpoint)"
        source = status.source
        breaker = status.breaker.rawValue
        health = status.health?.rawValue
        outstanding = status.outstanding
        offers = [(MLCapabilities.transcription, "transcription"), (.intent, "intent")].filter { status.capabilities.contains($0.0) }.map(\.1)
        wyoming = status.details.map {
            WyomingSummary(
                services: $0.services, programs: $0.programs, models: $0.models, languages: $0.languages,
                streamsTranscripts: $0.streamsTranscripts)
        }
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

/// One event of `GET /api/outbox/peek`: what `edge-gateway outbox peek` prints.
struct PeekedEvent: Codable, Sendable {
    var seq: Int64
    var deviceId: String
    var eventId: String
    var receivedAt: Int64
    /// The payload as text (invalid UTF-8 replaced).
    var payload: String

    init(_ event: StoredEvent) {
        seq = event.seq
        deviceId = event.device
        eventId = event.eventID
        receivedAt = event.receivedAt
        payload = String(decoding: event.payload, as: UTF8.self)
    }
}
