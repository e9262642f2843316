import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import UnixSignals

/// SIGHUP (`systemctl reload`) reloads the configuration file: what can change while running is
/// applied at once (``liveKeys``), the rest is named in a warning and waits for a restart. A file
/// that does not load or validate changes nothing and is logged at error.
struct ReloadService: Service, CustomStringConvertible {
    /// ServiceLifecycle logs services by their description: never the configuration (secrets).
    var description: String { "ReloadService(\(file ?? "-"))" }

    /// Keys (or key prefixes ending in `.`) that take effect without a restart.
    static let liveKeys = [
        "log.level", "limits.maxPayloadBytes", "devices.requireRegistration", "devices.ackQos", "dialog.", "ml.", "upstream.",
        "users.unknownUserPolicy", "commands.maxPayloadBytes", "commands.maxPerDevice", "commands.maxTotal", "commands.inflightPerDevice",
        "commands.ackTimeoutSeconds", "commands.retentionSeconds", "commands.maxTtlSeconds",
    ]

    static func isLive(_ key: String) -> Bool {
        liveKeys.contains { $0.hasSuffix(".") ? key.hasPrefix($0) : key == $0 }
    }

    let file: String?
    let started: GatewayConfiguration
    /// Applies the new configuration; `changed` lists the live keys whose values changed.
    let apply: @Sendable (_ new: GatewayConfiguration, _ changed: [String]) async -> Void
    let logger: Logger
    private let applied: Box
    private let outcomes = (
        applied: Counter(label: "gateway.config.reloads.total", dimensions: [("outcome", "applied")]),
        failed: Counter(label: "gateway.config.reloads.total", dimensions: [("outcome", "failed")])
    )

    final class Box: Sendable {
        let effective: Mutex<[String: String]>
        init(_ effective: [String: String]) { self.effective = Mutex(effective) }
    }

    init(
        file: String?, started: GatewayConfiguration, logger: Logger,
        apply: @escaping @Sendable (_ new: GatewayConfiguration, _ changed: [String]) async -> Void
    ) {
        self.file = file
        self.started = started
        self.apply = apply
        self.logger = logger
        applied = Box(Self.values(started))
    }

    static func values(_ configuration: GatewayConfiguration) -> [String: String] {
        Dictionary(
            configuration.effective.map { ($0.key, configuration.secretHashes[$0.key].map { "<secret \($0)>" } ?? $0.value) },
            uniquingKeysWith: { _, last in last })
    }

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                await reload()
            }
        }
    }

    func reload() async {
        guard let file else {
            logger.warning("SIGHUP received, but the gateway runs without --config: nothing to reload")
            return
        }
        let new: GatewayConfiguration
        do {
            new = try await GatewayConfiguration.load(file: file)
        } catch {
            outcomes.failed.increment()
            logger.error(
                "configuration reload failed; the running configuration stays",
                metadata: ["config.file": "\(file)", "error": "\(error)"])
            return
        }
        let values = Self.values(new)
        let before = applied.effective.withLock { $0 }
        let startedValues = Self.values(started)
        let changedLive = values.keys.filter { Self.isLive($0) && values[$0] != before[$0] }.sorted()
        let waiting = values.keys.filter { !Self.isLive($0) && values[$0] != startedValues[$0] }.sorted()
        for key in new.unknownKeys {
            logger.warning("unknown configuration key ignored", metadata: ["config.key": "\(key)"])
        }
        if !changedLive.isEmpty {
            await apply(new, changedLive)
            applied.effective.withLock { $0 = values }
        }
        outcomes.applied.increment()
        if !waiting.isEmpty {
            logger.warning(
                "configuration keys that change only at restart differ from the running ones",
                metadata: ["config.keys": "\(waiting.joined(separator: ", "))"])
        }
        logger.info(
            changedLive.isEmpty ? "configuration reloaded; nothing to change while running" : "configuration reloaded",
            metadata: ["config.file": "\(file)", "config.changed": "\(changedLive.joined(separator: ", "))"])
    }
}
