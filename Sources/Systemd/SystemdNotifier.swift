import CSystemd
import Foundation

/// Talks to systemd's notification socket (`sd_notify`). Without `NOTIFY_SOCKET` (not started by
/// systemd with `Type=notify`) every call is a cheap no-op.
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Whether a notification socket is configured.
    public var isAvailable: Bool { ProcessInfo.processInfo.environment["NOTIFY_SOCKET"] != nil }

    /// Start-up is complete: the store is open and the device subscription is active.
    public func ready(status: String? = nil) {
        send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// A one-line status shown by `systemctl status`.
    public func status(_ text: String) {
        send(["STATUS=\(text.replacingOccurrences(of: "\n", with: " "))"])
    }

    /// Keep-alive ping for `WatchdogSec=`.
    public func watchdog() {
        send(["WATCHDOG=1"])
    }

    /// Shutdown has begun.
    public func stopping() {
        send(["STOPPING=1"])
    }

    private func send(_ assignments: [String]) {
        guard isAvailable else { return }
        _ = edge_sd_notify(0, assignments.joined(separator: "\n"))
    }

    /// The watchdog interval systemd expects pings within (`WATCHDOG_USEC`), if enabled for us.
    public var watchdogInterval: Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec))
    }
}
