import Metrics

/// The commands' metrics, created once (dimensions are bounded: statuses and reasons, never a
/// device or command id).
struct CommandMetrics: Sendable {
    /// State changes of stored commands, by the status reached.
    let changes: [CommandStatus: Counter] = Dictionary(
        uniqueKeysWithValues: CommandStatus.allCases.map { ($0, Counter(label: "gateway.commands.total", dimensions: [("status", $0.rawValue)])) })
    /// Cloud commands the hub refused (not stored), by reason.
    let rejected: [CommandRejection.Kind: Counter] = Dictionary(
        uniqueKeysWithValues: CommandRejection.Kind.allCases.map {
            ($0, Counter(label: "gateway.commands.rejected.total", dimensions: [("reason", $0.rawValue)]))
        })
    /// Repeats of a stored command, answered with its status and not stored again.
    let repeated = Counter(label: "gateway.commands.repeated.total")
    /// Publishes to devices: first sends and re-sends after `commands.ackTimeoutSeconds`.
    let firstSends = Counter(label: "gateway.commands.sends.total", dimensions: [("attempt", "first")])
    let resends = Counter(label: "gateway.commands.sends.total", dimensions: [("attempt", "resend")])
    /// Device results that changed nothing, by reason.
    let ignored: [IgnoredResult.Reason: Counter] = Dictionary(
        uniqueKeysWithValues: IgnoredResult.Reason.allCases.map {
            ($0, Counter(label: "gateway.commands.results.ignored.total", dimensions: [("reason", $0.rawValue)]))
        })
    /// Operator cancels refused, by reason.
    let cancelRefused: [CancelRefusal.Reason: Counter] = Dictionary(
        uniqueKeysWithValues: CancelRefusal.Reason.allCases.map {
            ($0, Counter(label: "gateway.commands.cancels.refused.total", dimensions: [("reason", $0.rawValue)]))
        })
    /// Finished commands removed after `commands.retentionSeconds`.
    let purged = Counter(label: "gateway.commands.purged.total")
    /// Unfinished commands (queued, in flight, delivered) of all devices.
    let pending = Gauge(label: "gateway.commands.pending")
}
