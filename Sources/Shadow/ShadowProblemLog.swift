import GatewayCore
import Logging
import Synchronization

/// Logs refusals and failed commits at most once per ``intervalMs`` per message kind and reason,
/// with how many the line covers (`count`), so a device or cloud client that keeps sending bad
/// messages, or a failing disk, cannot flood the journal. Time is the caller's (`nowMs`, as for the
/// changes), so it needs no clock; a clock that went back counts as the interval having passed.
final class ShadowProblemLog: Sendable {
    static let intervalMs: Int64 = 10_000

    private let logger: Logger
    private let state = Mutex<[String: (last: Int64, suppressed: Int64)]>([:])

    init(logger: Logger) {
        self.logger = logger
    }

    func refused(_ refusal: ShadowRefusal, device: DeviceID, section: ShadowSection, nowMs: Int64) {
        let message = section == .desired ? "update" : "report"
        guard let count = admit("\(message)/\(refusal.code.rawValue)", nowMs: nowMs) else { return }
        // A conflict is the cloud's optimistic locking at work, not a fault.
        logger.log(
            level: refusal.code == .versionConflict ? .notice : .warning, "shadow \(message) refused",
            metadata: [
                "device.id": "\(device)", "shadow.version": "\(refusal.version ?? 0)", "reason": "\(refusal.code.rawValue)",
                "detail": "\(refusal.reason)", "count": "\(count)",
            ])
    }

    func failed(_ error: ShadowError, device: DeviceID, section: ShadowSection, nowMs: Int64) {
        guard let count = admit("failed/\(section.rawValue)", nowMs: nowMs) else { return }
        logger.error(
            "shadow change not stored",
            metadata: ["device.id": "\(device)", "shadow.section": "\(section.rawValue)", "error": "\(error)", "count": "\(count)"])
    }

    /// How many occurrences a line for `key` covers now, or nil when it is not time for one.
    private func admit(_ key: String, nowMs: Int64) -> Int64? {
        state.withLock { entries in
            if let entry = entries[key], nowMs >= entry.last, nowMs - entry.last < Self.intervalMs {
                entries[key] = (entry.last, entry.suppressed + 1)
                return nil
            }
            let suppressed = entries[key]?.suppressed ?? 0
            entries[key] = (nowMs, 0)
            return suppressed + 1
        }
    }
}
