/// The state of a stored command, as sent upstream in `status` (CONTRACTS.md §6).
///
/// `queued` and `delivered` are unfinished; the other four are final and never change again.
public enum CommandStatus: String, Sendable, CaseIterable, Codable {
    /// Durably stored on the hub (sent to the device or not: see ``CommandRecord/isInFlight``).
    case queued
    /// The device said `accepted`.
    case delivered
    case succeeded
    case failed
    /// By the device, or by the hub (`cancelled` by the operator).
    case rejected
    /// Its `expiresAt` passed before it finished.
    case expired

    public var isFinal: Bool {
        switch self {
        case .queued, .delivered: false
        case .succeeded, .failed, .rejected, .expired: true
        }
    }

    /// Forward order of states: a status is never replaced by one of a lower rank.
    var rank: Int {
        switch self {
        case .queued: 0
        case .delivered: 1
        case .succeeded, .failed, .rejected, .expired: 2
        }
    }
}
