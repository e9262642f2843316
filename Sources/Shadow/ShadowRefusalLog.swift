import GatewayCore
import Logging
import Synchronization

/// Logs refusals at most once per ``intervalMs`` per message kind and reason, with how many
/// refusals the line covers (`count`), so a device or cloud client that keeps sending bad messages
/// cannot flood the journal. Time is the caller's (`nowMs`, as for the changes), so it needs no
/// clock; a clock that went back counts as the interval having passed.
final class ShadowRefusalLog: Sendable {
    static let intervalMs: Int64 = 10_000

    private let logger: Logger
    private let state = Mutex<[String: (last: Int64, suppressed: Int64)]>([:])

    init(logger: Logger) {
        self.logger = logger
    }

    func log(_ refusal: ShadowRefusal, device: DeviceID, section: ShadowSection, nowMs: Int64) {
        let message = section == .desired ? "update" : "report"
        let key = "\(message)/\(refusal.code.rawValue)"
        let count: Int64? = state.withLock { entries in
            if let entry = entries[key], nowMs >= entry.last, nowMs - entry.last < Self.intervalMs {
                entries[key] = (entry.last, entry.suppressed + 1)
                return nil
            }
            let suppressed = entries[key]?.suppressed ?? 0
            entries[key] = (nowMs, 0)
            return suppressed + 1
        }
        guard let count else { return }
        // A conflict is the cloud's optimistic locking at work, not a fault.
        logger.log(
            level: refusal.code == .versionConflict ? .notice : .warning, "shadow \(message) refused",
            metadata: [
                "device.id": "\(device)", "shadow.version": "\(refusal.version ?? 0)", "reason": "\(refusal.code.rawValue)",
                "detail": "\(refusal.reason)", "count": "\(count)",
            ])
    }
}
