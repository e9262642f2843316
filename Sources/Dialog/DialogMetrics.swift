import Metrics

/// Dialog metrics, created once (dimensions are bounded: reasons and outcomes, never ids).
struct DialogMetrics: Sendable {
    static let rejectReasons = [
        "invalid_topic", "invalid_device_id", "too_large", "malformed", "unknown_session", "unsupported", "too_many_sessions",
        "session_limit", "user_mismatch", "reserved_device_id",
    ]
    static let outcomes = ["answered", "blocked", "denied", "error"] + [
        "malformed_audio", "unsupported_audio", "too_many_sessions", "session_timeout", "session_too_long", "ml_unavailable",
        "ml_failed", "no_transcript", "shutting_down", "session_limit",
    ]

    let sessionsStarted = Counter(label: "gateway.dialog.sessions.started.total")
    let frames = Counter(label: "gateway.dialog.frames.total")
    let lateFrames = Counter(label: "gateway.dialog.frames.late.total")
    let gaps = Counter(label: "gateway.dialog.frames.missing.total")
    let convertErrors = Counter(label: "gateway.dialog.frames.undecodable.total")
    let responses = Counter(label: "gateway.dialog.responses.published.total")
    let responsesLost = Counter(label: "gateway.dialog.responses.lost.total")
    let eventsRejected = Counter(label: "gateway.dialog.events.rejected.total")
    /// End message in to answer out.
    let latency = Timer(label: "gateway.dialog.latency.seconds")
    let rejectedByReason: [String: Counter] = Dictionary(
        uniqueKeysWithValues: rejectReasons.map { ($0, Counter(label: "gateway.dialog.audio.rejected.total", dimensions: [("reason", $0)])) })
    let endedByOutcome: [String: Counter] = Dictionary(
        uniqueKeysWithValues: outcomes.map { ($0, Counter(label: "gateway.dialog.sessions.ended.total", dimensions: [("outcome", $0)])) })

    func rejected(_ reason: String) { rejectedByReason[reason]?.increment() }
    func ended(_ outcome: String) { endedByOutcome[outcome]?.increment() }
}
