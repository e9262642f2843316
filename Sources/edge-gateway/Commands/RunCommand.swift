import ArgumentParser
import DeviceLink
import Dialog
import Foundation
import GatewayCore
import Logging
import MLLink
import MQTT
import Outbox
import Registration
import REST
import ServiceLifecycle
import Systemd
import Upstream
import Users

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the gateway daemon (stops cleanly on SIGTERM or SIGINT).")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try await options.load()
        LoggingSetup.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
        var logger = Logger(label: "edge-gateway")
        logger[metadataKey: "hub.id"] = "\(configuration.hubID)"
        if configuration.hubIDFromHostName {
            // Hubs imaged from one card share a host name (raspberrypi); upstream they would share
            // topics too.
            logger.warning("hub.id is not set; using the host name, which must be unique across hubs")
        }
        for key in configuration.unknownKeys {
            logger.warning("unknown configuration key ignored", metadata: ["config.key": "\(key)"])
        }
        logger.info(
            "starting edge-gateway",
            metadata: [
                "config.file": "\(options.config ?? "-")", "store.path": "\(configuration.store.path)",
                "mqtt.broker": "\(configuration.deviceBroker.host):\(configuration.deviceBroker.port)",
                "upstream.broker": "\(configuration.upstreamBroker.host):\(configuration.upstreamBroker.port)",
                "upstream.tls": "\(configuration.upstreamBroker.tls != nil)",
            ])
        if configuration.upstreamBroker.tls?.insecure == true {
            logger.warning("upstream TLS host name verification is off (upstream.tls.insecure)")
        }

        let outbox: Outbox
        do {
            outbox = try Outbox.open(configuration: configuration.store, logger: Logger(label: "edge-gateway.outbox"))
        } catch {
            logger.critical("cannot open the outbox", metadata: ["error": "\(error)", "store.path": "\(configuration.store.path)"])
            throw ExitCode(1)
        }
        let depth = outbox.depth
        logger.info("outbox open", metadata: ["outbox.depth": "\(depth.count)", "outbox.bytes": "\(depth.bytes)"])

        let health = GatewayHealth()
        let notifier = SystemdNotifier()
        let upstream = UpstreamForwarder(
            client: MQTTClient(configuration: configuration.upstreamBroker, logger: Logger(label: "edge-gateway.upstream.mqtt")),
            outbox: outbox, configuration: configuration.upstream, health: health,
            logger: Logger(label: "edge-gateway.upstream"))
        let ingress = DeviceIngress(
            client: MQTTClient(configuration: configuration.deviceBroker, logger: Logger(label: "edge-gateway.device.mqtt")),
            outbox: outbox, configuration: configuration.ingress, health: health,
            logger: Logger(label: "edge-gateway.ingress"))
        let ml = MLEndpointPool(configuration: configuration.ml, logger: Logger(label: "edge-gateway.ml"))
        if configuration.ml.targets.isEmpty {
            logger.notice("no ML endpoints configured (ml.endpoints): device audio sessions are answered with ERROR ml_unavailable")
        }
        let userCache: UserCache
        do {
            userCache = try UserCache(path: configuration.users.cachePath, maxEntries: configuration.users.cacheMaxEntries)
        } catch {
            // The cache only helps while the user service is down; run without keeping it on disk.
            logger.error("cannot open the user cache; keeping it in memory", metadata: ["users.cache_path": "\(configuration.users.cachePath)", "error": "\(error)"])
            userCache = try UserCache(path: ":memory:", maxEntries: configuration.users.cacheMaxEntries)
        }
        let users = UserDirectory(configuration: configuration.users, cache: userCache, logger: Logger(label: "edge-gateway.users"))
        var registrationService: RegistrationService?
        var localRegistry: LocalRegistry?
        if configuration.registration.enabled {
            do {
                localRegistry = try LocalRegistry(path: configuration.registration.statePath)
            } catch {
                logger.critical(
                    "cannot open the registration store",
                    metadata: ["registration.state_path": "\(configuration.registration.statePath)", "error": "\(error)"])
                throw ExitCode(1)
            }
            registrationService = try makeRegistration(configuration, local: localRegistry!, outbox: outbox, logger: logger)
        }
        let dialog = Dialog(
            client: MQTTClient(configuration: configuration.dialogBroker, logger: Logger(label: "edge-gateway.dialog.mqtt")),
            ml: ml, users: users, outbox: outbox, configuration: configuration.dialog,
            registeredUser: { [localRegistry] device in localRegistry?.device(device)?.userID },
            logger: Logger(label: "edge-gateway.dialog"))
        let status: @Sendable () async -> String = {
            let snapshot = health.snapshot
            let depth = outbox.depth
            let window = health.takeMaxCommitWindow()
            return "outbox \(depth.count) events; upstream \(snapshot.upstreamConnected ? "up" : "down")"
                + "; devices \(snapshot.deviceSubscribed ? "subscribed" : "not subscribed")"
                + String(format: "; max commit window %.1f ms", window)
        }
        let watchdogLogger = Logger(label: "edge-gateway.systemd")
        let watchdog = WatchdogService(
            notifier: notifier, logger: watchdogLogger,
            isHealthy: {
                // A store that has not finished a commit for this long is wedged; let systemd restart us.
                let stalled = outbox.writerStalledFor
                if stalled > .seconds(20) {
                    watchdogLogger.error("outbox writer stalled; withholding the watchdog ping", metadata: ["stalled": "\(stalled)"])
                    return false
                }
                return true
            },
            status: status)
        let readiness = ReadinessService(notifier: notifier, health: health, logger: logger)

        // Start order: store first, producers last; shutdown runs in reverse, so ingress stops
        // first, then dialogs answer their devices, the ML channels close, the forwarder finishes
        // in-flight publishes, and the store closes.
        var groupConfiguration = ServiceGroupConfiguration(
            services: [
                // A failed store (corruption) shuts the rest down in order; the run then ends non-zero.
                .init(service: outbox, failureTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: upstream),
                .init(service: ml),
                .init(service: dialog),
            ] + (registrationService.map { [ServiceGroupConfiguration.ServiceConfiguration(service: $0)] } ?? []) + [
                .init(service: ingress),
                .init(service: watchdog),
                .init(service: HangupService(logger: logger)),
                .init(service: MemoryTrimService(logger: watchdogLogger)),
                .init(service: readiness),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "edge-gateway.lifecycle"))
        // Inside systemd's TimeoutStopSec=30: past these the group cancels, then gives up waiting.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(25)
        groupConfiguration.maximumCancellationDuration = .seconds(3)
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch {
            logger.critical("gateway stopped on an error", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        logger.info("edge-gateway stopped", metadata: ["outbox.depth": "\(outbox.depth.count)"])
    }

    /// The registration saga and its parts (`registration.enabled`).
    private func makeRegistration(
        _ configuration: GatewayConfiguration, local: LocalRegistry, outbox: Outbox, logger: Logger
    ) throws -> RegistrationService {
        let settings = configuration.registration
        let registrationLogger = Logger(label: "edge-gateway.registration")
        let store: SagaStore
        do {
            store = try SagaStore(path: settings.statePath)
        } catch {
            logger.critical("cannot open the registration store", metadata: ["registration.state_path": "\(settings.statePath)", "error": "\(error)"])
            throw ExitCode(1)
        }
        let accounts = BrokerAccounts(
            client: MQTTClient(configuration: configuration.dynsecBroker, logger: Logger(label: "edge-gateway.dynsec.mqtt")),
            logger: registrationLogger)
        let service = { (name: String, url: String?) in
            ServiceClient(name: name, baseURL: url ?? "", timeout: settings.timeout, logger: registrationLogger)
        }
        let effects = ServiceEffects(
            users: service("user", settings.usersURL), registry: service("registry", settings.registryURL),
            billing: service("billing", settings.billingURL), local: local, accounts: accounts)
        let saga = RegistrationSaga(store: store, effects: effects, configuration: settings.saga, logger: registrationLogger)
        for id in saga.needingAttention {
            registrationLogger.error("a registration needs attention (a compensation kept failing)", metadata: ["request.id": "\(id)"])
        }
        return RegistrationService(
            client: MQTTClient(configuration: configuration.registrationBroker, logger: Logger(label: "edge-gateway.registration.mqtt")),
            accounts: accounts, saga: saga, outbox: outbox, hubID: configuration.hubID, logger: registrationLogger)
    }
}
