import Admin
import ArgumentParser
import CloudToDevice
import Commands
import DeviceLink
import Dialog
import Foundation
import GatewayCore
import Logging
import Metrics
import MLLink
import MQTT
import Outbox
import Platform
import Prometheus
import Registration
import Shadow
import REST
import Reporting
import ServiceLifecycle
import Synchronization
import Systemd
import Upstream
import Users

/// The daemon's parts, built from one configuration and wired together: the store, the device
/// edge and its consumers (dialogs, registration, microphone), the uplink, the ML pool, the admin
/// API and the systemd services. ``RunCommand`` runs them in one service group (``services``);
/// a reload reaches them through ``apply(_:changed:)``.
struct GatewayServices: Sendable {
    let outbox: Outbox
    let deviceLink: DeviceLink
    let upstream: UpstreamForwarder
    let ml: MLEndpointPool
    let dialog: Dialog
    let registration: RegistrationService?
    let microphone: HubMicrophone?
    /// Cloud commands (and shadows); nil when they are off.
    let cloudToDevice: CloudToDevice?
    let admin: AdminServer?
    let statusLine: StatusLine
    let watchdog: WatchdogService
    let readiness: ReadinessService
    let memoryTrim: MemoryTrimService

    /// Opens the stores and builds every part; throws (after logging why) when a store cannot be
    /// opened.
    static func build(_ configuration: GatewayConfiguration, metrics registry: PrometheusCollectorRegistry, logger: Logger) async throws -> GatewayServices {
        let outbox: Outbox
        do {
            outbox = try await offThePool { [store = configuration.store] in
                try Outbox.open(configuration: store, logger: Logger(label: "edge-gateway.outbox"))
            }
        } catch {
            logger.critical("cannot open the outbox", metadata: ["error": "\(error)", "store.path": "\(configuration.store.path)"])
            throw ExitCode(1)
        }
        let depth = outbox.depth
        logger.info("outbox open", metadata: ["outbox.depth": "\(depth.count)", "outbox.bytes": "\(depth.bytes)"])

        let activity = DeviceActivity(maxDevices: configuration.admin.maxDevicesListed, presenceSeconds: configuration.admin.deviceOnlineSeconds)
        let live = LiveFeed(configuration: configuration.admin, logger: Logger(label: "edge-gateway.admin.live"))
        let notifier = SystemdNotifier()
        let ml = MLEndpointPool(configuration: configuration.ml, logger: Logger(label: "edge-gateway.ml"))
        if configuration.ml.targets.isEmpty {
            logger.notice("no ML endpoints configured (ml.endpoints): device audio sessions are answered with ERROR ml_unavailable")
        }
        let userCache: UserCache
        do {
            userCache = try await offThePool { [users = configuration.users] in try UserCache(path: users.cachePath, maxEntries: users.cacheMaxEntries) }
        } catch {
            // The cache only helps while the user service is down; run without keeping it on disk.
            logger.error("cannot open the user cache; keeping it in memory", metadata: ["users.cache_path": "\(configuration.users.cachePath)", "error": "\(error)"])
            userCache = try UserCache(path: ":memory:", maxEntries: configuration.users.cacheMaxEntries)
        }
        let users = UserDirectory(configuration: configuration.users, cache: userCache, logger: Logger(label: "edge-gateway.users"))
        var localRegistry: LocalRegistry?
        if configuration.registration.enabled {
            do {
                localRegistry = try await offThePool { [path = configuration.registration.statePath] in try LocalRegistry(path: path) }
            } catch {
                logger.critical(
                    "cannot open the registration store",
                    metadata: ["registration.state_path": "\(configuration.registration.statePath)", "error": "\(error)"])
                throw ExitCode(1)
            }
        }
        let deviceLink = DeviceLink(
            configuration: configuration.deviceLink, outbox: outbox, ingress: configuration.ingress, activity: activity,
            isRegistered: { [localRegistry] device in localRegistry?.isRegistered(device) ?? false },
            logger: Logger(label: "edge-gateway.device"))
        var cloudToDevice: CloudToDevice?
        if configuration.cloudToDevice.enabled, let downlink = deviceLink.downlink {
            cloudToDevice = try await makeCloudToDevice(
                configuration, link: deviceLink, downlink: downlink, outbox: outbox, activity: activity, localRegistry: localRegistry,
                logger: logger)
        }
        // Cloud messages on the upstream link's subscriptions go to the commands (and shadows).
        let upstream = UpstreamForwarder(
            client: MQTTClient(configuration: configuration.upstreamBroker, logger: Logger(label: "edge-gateway.upstream.mqtt")),
            outbox: outbox, configuration: configuration.upstream,
            logger: Logger(label: "edge-gateway.upstream"),
            inbound: { [cloudToDevice] batch in await cloudToDevice?.takeCloud(batch.map { ($0.topic, $0.payload) }) })
        var registration: RegistrationService?
        if let localRegistry, let inbox = deviceLink.registrations, let accounts = deviceLink.accounts {
            registration = try await makeRegistration(
                configuration, link: deviceLink, inbox: inbox, accounts: accounts, local: localRegistry, outbox: outbox, activity: activity,
                logger: logger)
        }
        var liveSink: any LiveSink = live
        if configuration.audio.enabled, let playback = configuration.audio.playbackDevice, let hub = DeviceID(configuration.hubID) {
            let speaker = HubSpeaker(
                device: playback, hubID: hub, sampleRate: configuration.audio.sampleRate,
                alsaConfiguration: configuration.audio.alsaConfigFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) },
                replyCommand: configuration.audio.replyCommand,
                tts: configuration.audio.tts.map {
                    HubSpeaker.Speech(
                        server: $0, voice: configuration.audio.ttsVoice, timeoutSeconds: configuration.audio.ttsTimeoutSeconds,
                        maxSeconds: configuration.audio.ttsMaxSeconds)
                },
                logger: Logger(label: "edge-gateway.audio"))
            liveSink = LiveFanout([live, speaker])
        }
        let dialog = Dialog(
            inbox: deviceLink.audio, replies: deviceLink.replies,
            ml: ml, users: users, outbox: outbox, configuration: configuration.dialog,
            registeredUser: { [localRegistry] device in localRegistry?.registeredUser(device) }, live: liveSink, activity: activity,
            logger: Logger(label: "edge-gateway.dialog"))
        var microphone: HubMicrophone?
        if configuration.audio.enabled, let hub = DeviceID(configuration.hubID) {
            microphone = HubMicrophone(
                configuration: configuration.audio, hubID: hub, userID: configuration.audioUserID, dialog: dialog,
                listenRequests: deviceLink.listenRequests, logger: Logger(label: "edge-gateway.audio"))
        }
        let ingress = deviceLink.ingress
        let admin = configuration.admin.enabled
            ? AdminServer(
                configuration: configuration.admin,
                sources: adminSources(
                    configuration, outbox: outbox, ingress: ingress.state, upstream: upstream.state, activity: activity, ml: ml,
                    localRegistry: localRegistry, registration: registration, cloudToDevice: cloudToDevice, wake: microphone?.wakeState),
                registry: registry, live: live, logger: Logger(label: "edge-gateway.admin"))
            : nil
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
        return GatewayServices(
            outbox: outbox, deviceLink: deviceLink, upstream: upstream, ml: ml, dialog: dialog, registration: registration,
            microphone: microphone, cloudToDevice: cloudToDevice, admin: admin, statusLine: statusLine, watchdog: watchdog,
            readiness: ReadinessService(notifier: notifier, ingress: ingress.state, logger: logger),
            memoryTrim: MemoryTrimService(
                releaseStartupPagesAfter: configuration.releaseStartupPagesAfter,
                ready: { [state = ingress.state] in _ = await state.first(where: \.deviceSubscribed) }, logger: watchdogLogger))
    }

    /// The services in start order: store first, producers last. Shutdown runs in reverse, so the
    /// ingress stops first, then the registration and the dialogs answer their devices, the
    /// device edge closes its connections, the ML channels close, the forwarder finishes in-flight
    /// publishes, and the store closes.
    func services(reload: ReloadService) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        typealias Entry = ServiceGroupConfiguration.ServiceConfiguration
        var services: [Entry] = [
            // A failed store (corruption) shuts the rest down in order; the run then ends non-zero.
            Entry(service: outbox, failureTerminationBehavior: .gracefullyShutdownGroup),
        ]
        // Up as early and down as late as it can be: the operator sees the shutdown. A disabled
        // admin API is not in the group at all (a service that returns would end the group).
        if let admin { services.append(Entry(service: admin)) }
        services += [
            Entry(service: upstream),
            Entry(service: ml),
            // Before its consumers, so it stops after them: answers still reach the devices.
            Entry(service: deviceLink),
            Entry(service: dialog),
        ]
        if let registration { services.append(Entry(service: registration)) }
        if let cloudToDevice { services.append(Entry(service: cloudToDevice)) }
        services.append(Entry(service: deviceLink.ingress))
        if let microphone { services.append(Entry(service: microphone)) }
        services += [
            Entry(service: statusLine),
            Entry(service: watchdog),
            Entry(service: reload),
            Entry(service: memoryTrim),
            Entry(service: readiness),
        ]
        return services
    }

    /// Applies a reloaded configuration: each part gets its new settings when a key it reads
    /// changed (`changed`: the live keys whose values changed).
    func apply(_ new: GatewayConfiguration, changed: [String], logger: Logger) async {
        let touched = { (prefix: String) in changed.contains { $0 == prefix || $0.hasPrefix(prefix + ".") } }
        if touched("log.level") { LoggingSetup.setLevel(new.logLevel) }
        if new.requireRegistrationIgnored, touched("devices.requireRegistration") {
            logger.warning("devices.requireRegistration is on but registration.enabled is off: events from any device are taken")
        }
        if touched("limits.maxPayloadBytes") || touched("devices.requireRegistration") || touched("devices.ackQos") { deviceLink.update(new.ingress) }
        if touched("dialog") || touched("ml") || touched("users.unknownUserPolicy") { dialog.update(new.dialog) }
        if touched("ml") { await ml.update(new.ml) }
        if touched("upstream") { upstream.update(client: new.upstreamBroker, configuration: new.upstream) }
        if touched("commands") { await cloudToDevice?.reload(commands: new.cloudToDevice.commands) }
    }

    /// The operator's view of the cloud commands (`/api/commands`).
    static func commandSources(_ cloud: CloudToDevice) -> AdminSources.Commands {
        @Sendable func view(_ record: CommandRecord) -> CommandView {
            CommandView(
                deviceId: record.device.rawValue, commandId: record.commandID, name: record.name, status: record.status.rawValue,
                inFlight: record.isInFlight, params: record.params, result: record.result, message: record.message,
                expiresAt: record.expiresAt, receivedAt: record.receivedAt, updatedAt: record.updatedAt, attempts: record.attempts)
        }
        @Sendable func answer(_ answer: CloudToDevice.OperatorAnswer) -> CommandAnswer {
            switch answer {
            case .queued(let record): .queued(view(record))
            case .existing(let record): .existing(view(record))
            case .cancelled(let record): .cancelled(view(record))
            case .rejected(let reason, let detail): .rejected(reason: reason, detail: detail)
            case .refused(let notFound, let message): .refused(notFound: notFound, message: message)
            case .failed(let message): .failed(message)
            }
        }
        return AdminSources.Commands(
            list: { device in try await cloud.list(device: device).map(view) },
            send: { device, payload in answer(await cloud.operatorSend(device: device, payload: payload)) },
            cancel: { device, commandID in answer(await cloud.operatorCancel(device: device, commandID: commandID)) })
    }

    /// Cloud commands (`commands.enabled`) and shadows (`shadow.enabled`): their stores and the loop that carries them.
    private static func makeCloudToDevice(
        _ configuration: GatewayConfiguration, link: DeviceLink, downlink: any DeviceDownlink, outbox: Outbox, activity: DeviceActivity,
        localRegistry: LocalRegistry?, logger: Logger
    ) async throws -> CloudToDevice {
        let commandsLogger = Logger(label: "edge-gateway.commands")
        var commands: CommandQueue?
        if configuration.cloudToDevice.commands.enabled {
            do {
                commands = try await CommandQueue.open(
                    path: configuration.commandsPath, configuration: configuration.cloudToDevice.commands, logger: commandsLogger)
            } catch {
                logger.critical("cannot open the commands store", metadata: ["commands.state_path": "\(configuration.commandsPath)", "error": "\(error)"])
                throw ExitCode(1)
            }
        }
        var shadows: ShadowStore?
        if configuration.cloudToDevice.shadow.enabled {
            do {
                shadows = try await offThePool { [path = configuration.shadowPath, shadow = configuration.cloudToDevice.shadow] in
                    try ShadowStore(path: path, configuration: shadow, logger: Logger(label: "edge-gateway.shadow"))
                }
            } catch {
                await commands?.close()
                logger.critical("cannot open the shadow store", metadata: ["shadow.state_path": "\(configuration.shadowPath)", "error": "\(error)"])
                throw ExitCode(1)
            }
        }
        return CloudToDevice(
            configuration: configuration.cloudToDevice, commands: commands, shadows: shadows, outbox: outbox, downlink: downlink,
            inbox: link.commands, link: link.commandsLink, activity: activity,
            // With registration on, only registered devices take commands (`unknown device` otherwise).
            isKnown: { [localRegistry] device in localRegistry?.isRegistered(device) ?? true },
            logger: commandsLogger)
    }

    /// The registration saga and its parts (`registration.enabled`).
    private static func makeRegistration(
        _ configuration: GatewayConfiguration, link: DeviceLink, inbox: DeviceInbox<DeviceInbound>, accounts: BrokerAccounts,
        local: LocalRegistry, outbox: Outbox, activity: DeviceActivity, logger: Logger
    ) async throws -> RegistrationService {
        let settings = configuration.registration
        let registrationLogger = Logger(label: "edge-gateway.registration")
        let store: SagaStore
        do {
            store = try await offThePool { [path = settings.statePath] in try SagaStore(path: path) }
        } catch {
            logger.critical("cannot open the registration store", metadata: ["registration.state_path": "\(settings.statePath)", "error": "\(error)"])
            throw ExitCode(1)
        }
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
            inbox: inbox, replies: link.replies, accounts: accounts, saga: saga, outbox: outbox, hubID: configuration.hubID,
            local: local, settings: settings, activity: activity, logger: registrationLogger)
    }

    /// What the admin API shows, read from the running parts.
    static func adminSources(
        _ configuration: GatewayConfiguration, outbox: Outbox, ingress: PublishedState<DeviceIngress.State>,
        upstream: PublishedState<UpstreamForwarder.State>, activity: DeviceActivity,
        ml: MLEndpointPool, localRegistry: LocalRegistry?, registration: RegistrationService?, cloudToDevice: CloudToDevice?,
        wake: PublishedState<WakeWordListener.State>? = nil
    ) -> AdminSources {
        let oldestAge = Gauge(label: "gateway.outbox.oldest_age_seconds")
        let upstreamConnected = Gauge(label: "gateway.upstream.connected")
        let deviceSubscribed = Gauge(label: "gateway.device_broker.subscribed")
        let needsAttention = Gauge(label: "gateway.registration.needs_attention")
        // Its own read-only connection: a statistics query over a large backlog must not hold up the
        // forwarder's reads on the outbox's reader. The per-device list comes from the outbox's
        // counts in memory (no GROUP BY over a million rows).
        let inspector = try? outbox.makeInspector()
        let depth = Gauge(label: "gateway.outbox.depth")
        let bytes = Gauge(label: "gateway.outbox.bytes")
        let written = DiskWrittenCounter()
        let online = Gauge(label: "gateway.devices.online")
        var sources = AdminSources(
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
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                let presence = activity.presenceSeconds.load(ordering: .relaxed)
                var devices: [String: AdminSources.Device] = [:]
                for seen in activity.all {
                    devices[seen.deviceId] = .init(
                        deviceId: seen.deviceId, lastSeenMs: seen.lastSeenMs, lastChannel: seen.lastChannel,
                        messages: seen.messages, rejected: seen.rejected, registered: localRegistry == nil ? nil : false,
                        userId: nil, type: nil, announcedOnline: seen.announcedOnline,
                        online: seen.isOnline(nowMs: now, presenceSeconds: presence))
                }
                // Devices with cloud commands waiting are listed even before they were heard from.
                if let pending = cloudToDevice?.state.current.pending {
                    for (id, counts) in pending where counts.total > 0 {
                        devices[id, default: .init(
                            deviceId: id, lastSeenMs: nil, lastChannel: nil, messages: 0, rejected: 0, registered: localRegistry == nil ? nil : false,
                            userId: nil, type: nil)].pendingCommands = counts.total
                    }
                    for id in devices.keys where devices[id]?.pendingCommands == nil { devices[id]?.pendingCommands = 0 }
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
            commands: cloudToDevice.map(commandSources),
            shadows: cloudToDevice.flatMap { cloud in
                configuration.cloudToDevice.shadow.enabled ? .init(document: { cloud.shadowDocument($0) ?? Array("{}".utf8) }) : nil
            },
            links: {
                let (device, link) = (ingress.current, upstream.current)
                let broker = configuration.deviceBroker
                return (
                    deviceBroker: .init(
                        address: broker.addresses[0].description,
                        state: device.deviceSubscribed ? "subscribed" : device.deviceBrokerConnected ? "connected" : "down",
                        sinceMs: device.linkSinceMs, lastError: device.linkLastError),
                    upstream: .init(
                        address: link.upstreamBroker, state: link.upstreamConnected ? "connected" : "down",
                        sinceMs: link.upstreamSinceMs, lastError: link.upstreamLastError,
                        addresses: link.upstreamAddresses.count > 1 ? link.upstreamAddresses : nil,
                        failovers: link.upstreamFailovers)
                )
            },
            traffic: {
                let (device, link) = (ingress.current, upstream.current)
                return .init(
                    stored: device.eventsStored, duplicate: device.eventsDuplicate, rejected: device.eventsRejected,
                    forwarded: link.eventsForwarded, rejectedByReason: device.rejectedByReason)
            },
            recentProblems: { LoggingSetup.recent.all },
            diskWritten: { ProcessIO.writtenBytes() },
            wake: {
                guard let state = wake?.current else { return nil }
                return .init(
                    address: state.address, mode: state.mode.rawValue, state: state.connected ? "connected" : "down", sinceMs: state.sinceMs,
                    lastError: state.lastError, detections: state.detections, lastName: state.lastDetectionName, lastMs: state.lastDetectionMs)
            },
            outboxPeek: { device, limit in
                if let inspector { return try await inspector.peek(device: device, limit: limit) }
                return try await outbox.pending(after: 0, limit: limit).filter { device == nil || $0.device == device }
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
                written.refresh()
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                let presence = activity.presenceSeconds.load(ordering: .relaxed)
                online.record(activity.all.filter { $0.isOnline(nowMs: now, presenceSeconds: presence) }.count)
            })
        sources.storePath = configuration.store.path
        return sources
    }
}

/// `gateway_disk_written_bytes_total`: the kernel's count of bytes the daemon wrote to storage
/// (`/proc/self/io`), carried into a counter when `/metrics` is read.
final class DiskWrittenCounter: Sendable {
    private let counter = Counter(label: "gateway.disk.written.bytes.total")
    private let counted = Mutex<Int64>(0)

    func refresh() {
        guard let total = ProcessIO.writtenBytes() else { return }
        let delta = counted.withLock { counted -> Int64 in
            defer { counted = max(counted, total) }
            return max(0, total - counted)
        }
        if delta > 0 { counter.increment(by: delta) }
    }
}
