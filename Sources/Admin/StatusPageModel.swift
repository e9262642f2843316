import Foundation
import Outbox
import Reporting

extension StatusPage {
    /// The hub as the status page shows it, at one instant: traffic totals, the outbox, the links
    /// and the devices. `/api/status` answers it (with the chart's samples and the last dialogs),
    /// and every `status` message on `/live` carries it again, so the page shows nothing it did not
    /// get as a value.
    struct Hub: Encodable {
        /// Totals since the daemon started (from the ingress and the forwarder), and drops by
        /// reason as the store counts them (since the store was created).
        struct Traffic: Encodable {
            var stored: Int64
            var duplicate: Int64
            var rejected: Int64
            var forwarded: Int64
            /// Device events taken since start: stored + duplicate + rejected (the chart's "in").
            var received: Int64
            /// `rejected` by reason (`invalid json`, `payload too large`, …).
            var rejectedByReason: [String: Int64]
            /// Events dropped by the store's caps by reason (store counters, since the store was
            /// created); nil when the store could not be read.
            var droppedByReason: [String: Int64]?
        }

        struct Outbox: Encodable {
            var depth: Int64
            var bytes: Int64
            /// Age of the oldest waiting event; nil when the outbox is empty (or unread).
            var oldestAgeSeconds: Double?
        }

        struct Links: Encodable {
            var deviceBroker: AdminSources.Link
            var upstream: AdminSources.Link
        }

        struct Device: Encodable, Equatable {
            var deviceId: String
            /// Online as the device announced it (CONTRACTS.md §5), else sent anything within `onlineSeconds`.
            var online: Bool
            var lastSeenMs: Int64?
            /// Messages taken from it since start.
            var events: Int64
            /// Of those, rejected.
            var rejected: Int64
            /// Cloud commands not finished yet; nil when commands are off.
            var pendingCommands: Int?
        }

        struct Devices: Encodable {
            /// `devices.presenceSeconds`.
            var onlineSeconds: Int
            var total: Int
            var online: Int
            /// Every device the hub remembers (`admin.maxDevicesListed`), most recently seen first.
            var list: [Device]
        }

        /// What the daemon writes to storage (the SD card's wear).
        struct Disk: Encodable {
            /// Since the daemon started; nil where the kernel does not count it.
            var writtenBytes: Int64?
            /// At the rate of the last hour (from the chart's samples); nil in the first minute.
            var writtenPerDayBytes: Int64?
        }

        /// When these values were taken (ms since the epoch).
        var now: Int64
        var traffic: Traffic
        var outbox: Outbox
        var links: Links
        var devices: Devices
        var disk: Disk
        /// The last warnings and errors logged, newest first.
        var problems: [RecentLog.Entry]
        /// The hub microphone's wake-word server; nil without one.
        var wake: AdminSources.Wake?

        init(
            sources: AdminSources, stats: OutboxStats?, onlineSeconds: Int, history: DepthHistory? = nil,
            now: Int64 = Int64(Date().timeIntervalSince1970 * 1000)
        ) {
            self.now = now
            let written = sources.diskWritten()
            disk = Disk(writtenBytes: written, writtenPerDayBytes: history?.writtenPerDay(now: (now, written)))
            problems = sources.recentProblems()
            wake = sources.wake()
            let counts = sources.traffic()
            traffic = Traffic(
                stored: counts.stored, duplicate: counts.duplicate, rejected: counts.rejected, forwarded: counts.forwarded,
                received: counts.stored + counts.duplicate + counts.rejected,
                rejectedByReason: counts.rejectedByReason, droppedByReason: stats?.drops)
            let depth = sources.outboxDepth()
            outbox = Outbox(depth: depth.count, bytes: depth.bytes, oldestAgeSeconds: stats?.oldestAgeSeconds)
            let (deviceBroker, upstream) = sources.links()
            links = Links(deviceBroker: deviceBroker, upstream: upstream)
            let since = now - Int64(onlineSeconds) * 1000
            let list = sources.devices().map { device in
                Device(
                    // Presence (CONTRACTS.md §5): as announced, else heard from within devices.presenceSeconds.
                    deviceId: device.deviceId, online: device.announcedOnline ?? ((device.lastSeenMs ?? .min) >= since), lastSeenMs: device.lastSeenMs,
                    events: device.messages, rejected: device.rejected, pendingCommands: device.pendingCommands)
            }
            devices = Devices(onlineSeconds: onlineSeconds, total: list.count, online: list.filter(\.online).count, list: list)
        }
    }

    /// The device list of a `/live` status message after a client's first: what changed since the
    /// previous message (new devices, new counts, online flips) and the ids no longer listed.
    struct DeviceChanges: Encodable {
        var onlineSeconds: Int
        var total: Int
        var online: Int
        var changed: [Hub.Device]
        var removed: [String]
    }
}
