/// What ``ShadowStore`` did with an update or a report.
public enum ShadowOutcome: Sendable, Equatable {
    /// The change is committed: the new document (its version one more than before) and its delta.
    case applied(ShadowDocument, delta: JSONObject)
    /// The patch changed nothing (by JSON equality: `{"a": 1.0}` over `{"a": 1}` is no change): not
    /// a change, so the version stays and nothing is written. The current document.
    case unchanged(ShadowDocument)
    /// The expected version was not the document's; nothing changed. The refusal's code is
    /// `version_conflict` and its version the current one.
    case conflict(ShadowRefusal)
    /// Refused (`invalid`, `too_large`, `too_many_devices`); nothing changed.
    case rejected(ShadowRefusal)

    /// The refusal to send back, for `conflict` and `rejected`.
    public var refusal: ShadowRefusal? {
        switch self {
        case .applied, .unchanged: nil
        case .conflict(let refusal), .rejected(let refusal): refusal
        }
    }

    /// The document after the outcome, for `applied` and `unchanged`.
    public var document: ShadowDocument? {
        switch self {
        case .applied(let document, _), .unchanged(let document): document
        case .conflict, .rejected: nil
        }
    }

    /// The metric label of the outcome.
    var label: String {
        switch self {
        case .applied: "applied"
        case .unchanged: "unchanged"
        case .conflict: "conflict"
        case .rejected: "rejected"
        }
    }
}
