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

    let sessionsStarted = Counter(label: "gateway.dialog.sessions.started")
    let frames = Counter(label: "gateway.dialog.frames")
    let lateFrames = Counter(label: "gateway.dialog.frames.late")
    let gaps = Counter(label: "gateway.dialog.frames.missing")
    let convertErrors = Counter(label: "gateway.dialog.frames.undecodable")
    let responses = Counter(label: "gateway.dialog.responses.published")
    let responsesLost = Counter(label: "gateway.dialog.responses.lost")
    let eventsRejected = Counter(label: "gateway.dialog.events.rejected")
    /// End message in to answer out.
    let latency = Timer(label: "gateway.dialog.latency")
    let rejectedByReason: [String: Counter] = Dictionary(
        uniqueKeysWithValues: rejectReasons.map { ($0, Counter(label: "gateway.dialog.audio.rejected", dimensions: [("reason", $0)])) })
    let endedByOutcome: [String: Counter] = Dictionary(
        uniqueKeysWithValues: outcomes.map { ($0, Counter(label: "gateway.dialog.sessions.ended", dimensions: [("outcome", $0)])) })

    func rejected(_ reason: String) { rejectedByReason[reason]?.increment() }
    func ended(_ outcome: String) { endedByOutcome[outcome]?.increment() }
}
