import Admin
import ArgumentParser
import DeviceLink
import Dialog
import Foundation
import GatewayCore
import Logging
import Metrics
import MLLink
import MQTT
import Outbox
import Registration
import REST
import Reporting
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
        // A child (the text-to-speech program) or a peer that goes away must cost a write error,
        // not the daemon: a daemon ignores SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        let configuration = try await options.load()
        LoggingSetup.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
        // Before any component creates its metrics: those made earlier would stay no-ops.
        let metricsRegistry = MetricsExport.bootstrap()
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
        if configuration.requireRegistrationIgnored {
            logger.warning("devices.requireRegistration is on but registration.enabled is off: events from any device are taken")
        }
        if configuration.upstreamBroker.tls?.insecure == true {
            logger.warning(
                "upstream TLS does not verify the server (upstream.tls.insecure): its certificate and host name are not checked, so anyone on the path can read and change the events")
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

        let activity = DeviceActivity(maxDevices: configuration.admin.maxDevicesListed)
        let live = LiveFeed(configuration: configuration.admin, logger: Logger(label: "edge-gateway.admin.live"))
        let notifier = SystemdNotifier()
        let upstream = UpstreamForwarder(
            client: MQTTClient(configuration: configuration.upstreamBroker, logger: Logger(label: "edge-gateway.upstream.mqtt")),
            outbox: outbox, configuration: configuration.upstream,
            logger: Logger(label: "edge-gateway.upstream"))
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
            registrationService = try await makeRegistration(configuration, local: localRegistry!, outbox: outbox, activity: activity, logger: logger)
        }
        let ingress = DeviceIngress(
            client: MQTTClient(configuration: configuration.deviceBroker, logger: Logger(label: "edge-gateway.device.mqtt")),
            outbox: outbox, configuration: configuration.ingress, activity: activity,
            isRegistered: { [localRegistry] device in localRegistry?.isRegistered(device) ?? false },
            logger: Logger(label: "edge-gateway.ingress"))
        var liveSink: any LiveSink = live
        if configuration.audio.enabled, let playback = configuration.audio.playbackDevice, let hub = DeviceID(configuration.hubID) {
            let speaker = HubSpeaker(
                device: playback, hubID: hub, sampleRate: configuration.audio.sampleRate,
                alsaConfiguration: configuration.audio.alsaConfigFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) },
                replyCommand: configuration.audio.replyCommand, logger: Logger(label: "edge-gateway.audio"))
            liveSink = LiveFanout([live, speaker])
        }
        let dialog = Dialog(
            client: MQTTClient(configuration: configuration.dialogBroker, logger: Logger(label: "edge-gateway.dialog.mqtt")),
            ml: ml, users: users, outbox: outbox, configuration: configuration.dialog,
            registeredUser: { [localRegistry] device in localRegistry?.registeredUser(device) }, live: liveSink, activity: activity,
            logger: Logger(label: "edge-gateway.dialog"))
        var microphone: HubMicrophone?
        if configuration.audio.enabled, let hub = DeviceID(configuration.hubID) {
            microphone = HubMicrophone(
                configuration: configuration.audio, hubID: hub, userID: configuration.audioUserID, dialog: dialog,
                client: MQTTClient(configuration: configuration.microphoneBroker, logger: Logger(label: "edge-gateway.audio.mqtt")),
                logger: Logger(label: "edge-gateway.audio"))
        }
        let admin = AdminServer(
            configuration: configuration.admin,
            sources: adminSources(
                configuration, outbox: outbox, ingress: ingress.state, upstream: upstream.state, activity: activity, ml: ml,
                localRegistry: localRegistry,
                registration: registrationService),
            registry: metricsRegistry, live: live, logger: Logger(label: "edge-gateway.admin"))
        let statusLine = StatusLine(outbox: outbox, ingress: ingress.state, upstream: upstream.state)
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
            status: { statusLine.next() })
        let readiness = ReadinessService(notifier: notifier, ingress: ingress.state, logger: logger)

        // Start order: store first, producers last; shutdown runs in reverse, so ingress stops
        // first, then dialogs answer their devices, the ML channels close, the forwarder finishes
        // in-flight publishes, and the store closes.
        typealias Entry = ServiceGroupConfiguration.ServiceConfiguration
        var services: [Entry] = [
            // A failed store (corruption) shuts the rest down in order; the run then ends non-zero.
            Entry(service: outbox, failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
        // Up as early and down as late as it can be: the operator sees the shutdown. A disabled
        // admin API is not in the group at all (a service that returns would end the group).
        if configuration.admin.enabled { services.append(Entry(service: admin)) }
        services += [
            Entry(service: upstream),
            Entry(service: ml),
            Entry(service: dialog),
        ]
        if let registrationService { services.append(Entry(service: registrationService)) }
        services.append(Entry(service: ingress))
        if let microphone { services.append(Entry(service: microphone)) }
        services += [
            Entry(service: statusLine),
            Entry(service: watchdog),
            Entry(service: ReloadService(file: options.config, started: configuration, logger: logger) { [logger] new, changed in
                let touched = { (prefix: String) in changed.contains { $0 == prefix || $0.hasPrefix(prefix + ".") } }
                if touched("log.level") { LoggingSetup.setLevel(new.logLevel) }
                if new.requireRegistrationIgnored, touched("devices.requireRegistration") {
                    logger.warning("devices.requireRegistration is on but registration.enabled is off: events from any device are taken")
                }
                if touched("limits.maxPayloadBytes") || touched("devices.requireRegistration") { ingress.update(new.ingress) }
                if touched("dialog") || touched("ml") || touched("users.unknownUserPolicy") { dialog.update(new.dialog) }
                if touched("ml") { await ml.update(new.ml) }
                if touched("upstream") { upstream.update(client: new.upstreamBroker, configuration: new.upstream) }
            }),
            Entry(service: MemoryTrimService(logger: watchdogLogger)),
            Entry(service: readiness),
        ]
        var groupConfiguration = ServiceGroupConfiguration(
            services: services,
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
        _ configuration: GatewayConfiguration, local: LocalRegistry, outbox: Outbox, activity: DeviceActivity, logger: Logger
    ) async throws -> RegistrationService {
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
        for id in await saga.needingAttention {
            registrationLogger.error("a registration needs attention (a compensation kept failing)", metadata: ["request.id": "\(id)"])
        }
        return RegistrationService(
            client: MQTTClient(configuration: configuration.registrationBroker, logger: Logger(label: "edge-gateway.registration.mqtt")),
            accounts: accounts, saga: saga, outbox: outbox, hubID: configuration.hubID, local: local, settings: settings,
            activity: activity, logger: registrationLogger)
    }

    /// What the admin API shows, read from the running parts.
    private func adminSources(
        _ configuration: GatewayConfiguration, outbox: Outbox, ingress: PublishedState<DeviceIngress.State>,
        upstream: PublishedState<UpstreamForwarder.State>, activity: DeviceActivity,
        ml: MLEndpointPool, localRegistry: LocalRegistry?, registration: RegistrationService?
    ) -> AdminSources {
        let oldestAge = Gauge(label: "gateway.outbox.oldest_age_seconds")
        let upstreamConnected = Gauge(label: "gateway.upstream.connected")
        let deviceSubscribed = Gauge(label: "gateway.device_broker.subscribed")
        let needsAttention = Gauge(label: "gateway.registration.needs_attention")
        // Its own read-only connection: a statistics query over a large backlog must not hold up the
        // forwarder's reads on the outbox's reader.
        let inspector = try? OutboxInspector(path: configuration.store.path)
        let depth = Gauge(label: "gateway.outbox.depth")
        let bytes = Gauge(label: "gateway.outbox.bytes")
        return AdminSources(
            hubID: configuration.hubID,
            readiness: {
                // The hub's status, assembled from what the ingress and the forwarder publish.
                let (device, link) = (ingress.current, upstream.current)
                return .init(
                    storeOpen: outbox.isOpen, deviceBrokerConnected: device.deviceBrokerConnected,
                    deviceSubscribed: device.deviceSubscribed, upstreamConnected: link.upstreamConnected,
                    upstreamLastError: link.upstreamLastError)
            },
            outboxStats: {
                if let inspector { return try await inspector.stats() }
                return try await outbox.stats()
            },
            outboxDepth: {
                let depth = outbox.depth
                return (depth.count, depth.bytes)
            },
            devices: {
                var devices: [String: AdminSources.Device] = [:]
                for seen in activity.all {
                    devices[seen.deviceId] = .init(
                        deviceId: seen.deviceId, lastSeenMs: seen.lastSeenMs, lastChannel: seen.lastChannel,
                        messages: seen.messages, rejected: seen.rejected, registered: localRegistry == nil ? nil : false,
                        userId: nil, type: nil)
                }
                for known in localRegistry?.registeredDevices ?? [] {
                    var device = devices[known.device.rawValue] ?? .init(
                        deviceId: known.device.rawValue, lastSeenMs: nil, lastChannel: nil, messages: 0, rejected: 0,
                        registered: true, userId: nil, type: nil)
                    device.registered = true
                    device.userId = known.userID
                    device.type = known.type
                    devices[known.device.rawValue] = device
                }
                return devices.values.sorted { ($0.lastSeenMs ?? 0, $1.deviceId) > ($1.lastSeenMs ?? 0, $0.deviceId) }
            },
            mlEndpoints: { ml.endpoints },
            registrations: registration.map { service in
                .init(
                    register: { device, body in await service.registerAndAnswer(device: device, payload: body) },
                    needingAttention: { await service.needingAttention })
            },
            refreshMetrics: {
                let current = outbox.depth
                depth.record(current.count)
                bytes.record(current.bytes)
                let age = if let inspector { try? await inspector.oldestAgeSeconds() } else { try? await outbox.oldestAgeSeconds() }
                oldestAge.record(age.flatMap { $0 } ?? 0)
                upstreamConnected.record(upstream.current.upstreamConnected ? 1 : 0)
                deviceSubscribed.record(ingress.current.deviceSubscribed ? 1 : 0)
                needsAttention.record(await registration?.needingAttention.count ?? 0)
            })
    }
}
