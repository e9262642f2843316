/// Every metric the daemon makes, by its swift-metrics label, with its kind and the `# HELP` text
/// that `/metrics` prints for its family.
///
/// A label is the exported name with dots for underscores (`gateway.outbox.depth` is
/// `gateway_outbox_depth`), and it already follows Prometheus' conventions: counters end in
/// `.total`, durations in `.seconds`, sizes in `.bytes`. A metric made with a label missing here is
/// exported without `# HELP`, which `promtool check metrics` reports; `MetricsCatalogTests` fails
/// first, because it reads every label in Sources/ and looks it up here.
public enum MetricsCatalog {
    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    public struct Entry: Sendable {
        public let kind: Kind
        public let help: String
    }

    /// The build's identity: one series, value 1, labels `version` and `commit` (``GatewayVersion``).
    public static let buildInfo = "gateway.build.info"

    /// The Prometheus name of a swift-metrics label.
    public static func exportedName(_ label: String) -> String {
        label.replacingOccurrences(of: ".", with: "_")
    }

    public static let entries: [String: Entry] = [
        buildInfo: gauge("Always 1; the version and commit of the running daemon as labels."),

        // The outbox (Sources/Outbox).
        "gateway.outbox.depth": gauge("Events stored in the outbox and not yet acknowledged by the upstream broker."),
        "gateway.outbox.bytes": gauge("Bytes the waiting events count against store.maxBytes (payload plus 64 per event)."),
        "gateway.outbox.capacity.bytes": gauge("The outbox's cap, store.maxBytes, in the unit of gateway_outbox_bytes."),
        "gateway.outbox.oldest_age_seconds": gauge("Age of the oldest event waiting in the outbox, 0 when it is empty."),
        "gateway.outbox.events.appended.total": counter("Events stored in the outbox (repeats of a stored event not counted)."),
        "gateway.outbox.events.acked.total": counter("Events removed from the outbox after the upstream broker acknowledged them."),
        "gateway.outbox.events.dropped.total": counter("Events dropped by the outbox's caps, by reason (capacity, expired)."),
        "gateway.outbox.commits.total": counter("Transactions the outbox committed (device events share one under group commit)."),
        "gateway.outbox.fsyncs.total": counter("fsyncs of the outbox: one per commit with store.synchronous full, two per checkpoint."),
        "gateway.outbox.written.bytes.total": counter("Bytes the outbox's commits wrote to its WAL (page plus 24-byte header a frame); checkpoints not included."),

        // The device edge (Sources/DeviceLink).
        "gateway.ingress.events.stored.total": counter("Device events committed and acknowledged as stored."),
        "gateway.ingress.events.duplicate.total": counter("Device events acknowledged as duplicates of a stored event."),
        "gateway.ingress.acks.failed.total": counter("Acknowledgements to devices that could not be published."),
        "gateway.ingress.commit_window.seconds": histogram("Time from a device event's arrival to its durable commit."),
        "gateway.mqtt.messages.rejected.total": counter("Device messages rejected, by reason."),
        "gateway.device_broker.subscribed": gauge("1 while the subscription on the device broker stands, else 0."),
        "gateway.cloud.messages.rejected.total": counter("Messages from the cloud on the upstream link's subscriptions that were not taken, by reason (invalid_topic)."),
        "gateway.devices.online": gauge("Devices online now (CONTRACTS.md §5: as announced on device/{id}/status, else heard from within devices.presenceSeconds)."),

        // The upstream link (Sources/Upstream).
        "gateway.upstream.connected": gauge("1 while the connection to the upstream broker is up, else 0."),
        "gateway.upstream.connects.total": counter("Connect attempts to the upstream broker, by result (ok: CONNACK accepted, failed: refused, unreachable or no CONNACK)."),
        "gateway.upstream.failovers.total": counter("Moves to another upstream address (upstream.hosts) after a failed connect or a lost connection."),
        "gateway.upstream.address.info": gauge("1 for the upstream address in use (label address), 0 for the other configured ones."),
        "gateway.upstream.publish.duration.seconds": histogram("Time from publishing an event upstream to the broker's PUBACK."),
        "gateway.upstream.events.forwarded.total": counter("Events the upstream broker acknowledged."),
        "gateway.upstream.events.dropped.total": counter("Events dropped instead of forwarded, by reason (unpublishable)."),

        // The ML service (Sources/MLLink).
        "gateway.ml.calls.total": counter("Calls to ML endpoints, by endpoint, call and outcome."),
        "gateway.ml.breaker.state": gauge("Circuit breaker of an ML endpoint: 0 closed, 1 half-open, 2 open."),
        "gateway.wyoming.calls.failed.total": counter("Failed calls to Wyoming servers, by call and reason (the error code)."),

        // Voice dialogs (Sources/Dialog).
        "gateway.dialog.latency.seconds": histogram("Time from the end of a device's audio to the answer sent to it."),
        "gateway.dialog.sessions.started.total": counter("Voice sessions started."),
        "gateway.dialog.sessions.ended.total": counter("Voice sessions ended, by outcome."),
        "gateway.dialog.frames.total": counter("Audio frames received in voice sessions."),
        "gateway.dialog.frames.late.total": counter("Audio frames that arrived after their place in the stream had passed."),
        "gateway.dialog.frames.missing.total": counter("Audio frames never received (gaps in sequence numbers)."),
        "gateway.dialog.frames.undecodable.total": counter("Audio frames that could not be decoded or converted."),
        "gateway.dialog.audio.rejected.total": counter("Device audio messages refused, by reason."),
        "gateway.dialog.responses.published.total": counter("Answers published to devices."),
        "gateway.dialog.responses.lost.total": counter("Answers given up after their retries."),
        "gateway.dialog.events.rejected.total": counter("DialogCompleted events the outbox refused to store (store full)."),

        // The hub's own microphone and speaker (Sources/Dialog).
        "gateway.audio.overruns.total": counter("Capture overruns of the hub microphone (recovered)."),
        "gateway.audio.frames.dropped.total": counter("Microphone frames dropped because the daemon could not take them in time."),
        "gateway.audio.capture.errors.total": counter("Errors reading the hub microphone."),
        "gateway.audio.segments.total": counter("Microphone segments sent to the ML service, by trigger (vad, wake, push_to_talk)."),
        "gateway.audio.wake.detections.total": counter("Wake words the wake-word server detected, by name (configured names, else the first eight seen, else other)."),
        "gateway.audio.wake.detections.ignored.total": counter("Wake-word detections that came while a microphone segment was open (nothing opened)."),
        "gateway.audio.wake.connection.failures.total": counter("Failed conversations with the wake-word server, by reason (the Wyoming error code); each costs a reconnect."),
        "gateway.audio.wake.frames.dropped.total": counter("Microphone frames not sent to the wake-word server because it fell behind (oldest dropped)."),
        "gateway.audio.playback.replies.total": counter("Replies spoken on the hub speaker."),
        "gateway.audio.playback.chimes.total": counter("Chimes played on the hub speaker."),
        "gateway.audio.playback.errors.total": counter("Errors playing on the hub speaker."),
        "gateway.audio.tts.failures.total": counter("Replies the Wyoming TTS server (audio.tts) did not speak, by reason; the chime played instead."),

        // Device registration (Sources/Registration).
        "gateway.registration.outcomes.total": counter("Registrations finished, by outcome."),
        "gateway.registration.rejected.total": counter("Registration requests refused before their saga, by reason."),
        "gateway.registration.needs_attention": gauge("Registration sagas left needing an operator."),
        "gateway.registration.running": gauge("Registration sagas running now."),
        "gateway.registration.queue.waiting": gauge("Registration requests waiting for their turn."),

        // Cloud → device commands (Sources/Commands).
        "gateway.commands.total": counter("State changes of stored commands, by the status reached."),
        "gateway.commands.rejected.total": counter("Cloud commands the hub refused without storing them, by reason."),
        "gateway.commands.repeated.total": counter("Repeats of a stored command, answered with its status and not stored again."),
        "gateway.commands.sends.total": counter("Commands published to devices, by attempt (first, resend)."),
        "gateway.commands.results.ignored.total": counter("Device command results that changed nothing, by reason."),
        "gateway.commands.cancels.refused.total": counter("Operator cancels refused, by reason."),
        "gateway.commands.purged.total": counter("Finished commands removed after commands.retentionSeconds."),
        "gateway.commands.pending": gauge("Unfinished commands (queued, in flight, delivered) of all devices."),

        // Device shadows (Sources/Shadow).
        "gateway.shadow.updates.total": counter("Cloud shadow updates, by outcome (applied, unchanged, conflict, rejected, failed)."),
        "gateway.shadow.reports.total": counter("Device shadow reports, by outcome (applied, unchanged, rejected, failed)."),
        "gateway.shadow.rejected.total": counter("Shadow updates and reports refused, by message (update, report) and reason."),
        "gateway.shadow.documents": gauge("Devices with a shadow document on the hub."),

        // The daemon and its admin API.
        "gateway.disk.written.bytes.total": counter("Bytes the daemon made the kernel write to storage (its SQLite stores: WAL, checkpoints), from /proc/self/io."),
        "gateway.log.messages.total": counter("Warnings and errors the daemon logged, by level (warning, error, critical)."),
        "gateway.config.reloads.total": counter("Configuration reloads (SIGHUP), by outcome (applied, failed)."),
        "gateway.live.clients.dropped.total": counter("Clients of the /live stream closed or refused, by reason (slow, too_many)."),
        "gateway.admin.requests.unauthorized.total": counter("Admin API requests without the right token."),
        "gateway.admin.requests.rejected.total": counter("Admin API requests and connections refused before a route, by reason."),
    ]

    private static func counter(_ help: String) -> Entry { Entry(kind: .counter, help: help) }
    private static func gauge(_ help: String) -> Entry { Entry(kind: .gauge, help: help) }
    private static func histogram(_ help: String) -> Entry { Entry(kind: .histogram, help: help) }
}
