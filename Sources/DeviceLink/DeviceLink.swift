import GatewayCore
import Logging
import MQTT
import Outbox
import ServiceLifecycle
import Synchronization

/// The connections to the device broker's configurations, one per job. Each is its own broker
/// identity (client id `{mqtt.clientId}` or `{mqtt.clientId}-{suffix}`, and with
/// `mqtt.accountPerConnection` its own account bound to that client id), so the broker gives each
/// only its own topics and one cannot take over another's session.
public struct DeviceLinkConfiguration: Sendable {
    /// The hub's id (`hub.id`): the hub's push-to-talk topic is `hub/{hubId}/listen`.
    public var hubID: String
    /// Events and telemetry in, acks out (`{mqtt.clientId}`, persistent session: the broker keeps
    /// what devices send while the gateway restarts).
    public var events: MQTTClientConfiguration
    /// Audio in, dialog responses out (`-dialog`, clean session: a dialog does not outlive the gateway).
    public var audio: MQTTClientConfiguration
    /// Registration requests in, results out (`-registration`, persistent); nil: registration is off.
    public var registrations: MQTTClientConfiguration?
    /// The dynamic-security plugin's control topic (`-dynsec`, the plugin's admin identity); nil:
    /// registration is off.
    public var accounts: MQTTClientConfiguration?
    /// Push-to-talk requests (`-mic`, clean session); nil: the hub has no microphone (`audio.enabled`).
    public var listen: MQTTClientConfiguration?
    /// Cloud commands and shadows (`-commands`, persistent: results and reports devices send while
    /// the gateway restarts wait at the broker): command results, shadow reports and gets in;
    /// commands, deltas and shadow documents out. nil: both `commands.enabled` and
    /// `shadow.enabled` are off.
    public var commands: MQTTClientConfiguration?

    public init(
        hubID: String, events: MQTTClientConfiguration, audio: MQTTClientConfiguration,
        registrations: MQTTClientConfiguration? = nil, accounts: MQTTClientConfiguration? = nil, listen: MQTTClientConfiguration? = nil,
        commands: MQTTClientConfiguration? = nil
    ) {
        self.hubID = hubID
        self.events = events
        self.audio = audio
        self.registrations = registrations
        self.accounts = accounts
        self.listen = listen
        self.commands = commands
    }
}

/// The device edge: the only part of the gateway that talks to the device broker. It owns every
/// connection to it (``DeviceLinkConfiguration``), the topic grammar (``DeviceTopic``), and hands
/// the rest of the gateway typed values:
///
/// - events and telemetry go straight into the outbox and are acknowledged after their commit
///   (``ingress``, a service of its own: the ack must follow the commit);
/// - ``audio``, ``registrations`` and ``listenRequests``: what devices (and the hub's operator)
///   send, as ``DeviceInbox`` sequences for the dialogs, the registration and the microphone;
/// - ``replies``: everything sent back (acks, responses, registration results);
/// - ``commands`` and ``downlink``: what devices answer to cloud commands and send of their
///   shadows, and what goes to them (commands, shadow deltas and documents), with ``commandsLink``
///   telling when that connection comes and goes;
/// - ``accounts``: per-device broker accounts (the dynamic-security plugin), for the registration.
///
/// As a service it starts the connections and, at shutdown, closes them once every consumer has
/// stopped: it runs before its consumers in the service group, so it stops after them (dialogs
/// answer their devices on a connection that is still up).
public final class DeviceLink: Service, Sendable {
    public let ingress: DeviceIngress
    public let audio: DeviceInbox<DeviceInbound>
    public let registrations: DeviceInbox<DeviceInbound>?
    public let listenRequests: DeviceInbox<ListenRequest>?
    public let accounts: BrokerAccounts?
    public let replies: Replies
    /// Command results, shadow reports and shadow gets; nil when commands and shadows are off.
    public let commands: DeviceInbox<DeviceInbound>?
    /// Commands, shadow deltas and shadow documents to devices; nil when commands and shadows are off.
    public let downlink: Downlink?
    /// The commands connection's state (connected, subscribed, down); nil when it is off. One consumer.
    public let commandsLink: AsyncStream<LinkChange>?

    private let eventsClient: MQTTClient
    private let commandsClient: MQTTClient?
    private let commandsLinkContinuation: AsyncStream<LinkChange>.Continuation?
    /// The events connection's state, for the ingress (``run()`` follows the connection).
    private let eventsLink = AsyncStream.makeStream(of: LinkChange.self, bufferingPolicy: .bufferingNewest(64))
    private let audioClient: MQTTClient
    private let registrationsClient: MQTTClient?
    private let listenClient: MQTTClient?
    private let logger: Logger

    /// - Parameters:
    ///   - activity: where each device's last message is noted (admin API), if anywhere.
    ///   - isRegistered: asked for every event when `ingress.requireRegistration` is on.
    public init(
        configuration: DeviceLinkConfiguration, outbox: Outbox, ingress ingressConfiguration: DeviceIngressConfiguration,
        activity: DeviceActivity? = nil, isRegistered: @escaping @Sendable (DeviceID) -> Bool = { _ in false }, logger: Logger
    ) {
        self.logger = logger
        func connection(_ settings: MQTTClientConfiguration, subscribing filters: [String], label: String) -> MQTTClient {
            var settings = settings
            settings.subscriptions = filters
            return MQTTClient(configuration: settings, logger: Logger(label: "\(logger.label).\(label)"))
        }
        // Presence is optional on the broker's side: a hub installed before it has no ACL for
        // device/+/status, and its events must not stop for that (setup-broker --migrate-accounts adds it).
        var eventsSettings = configuration.events
        eventsSettings.optionalSubscriptions = [DeviceTopic.filter(.status)]
        eventsClient = connection(eventsSettings, subscribing: [DeviceTopic.filter(.event), DeviceTopic.filter(.telemetry)], label: "mqtt")
        audioClient = connection(configuration.audio, subscribing: [DeviceTopic.filter(.audio)], label: "dialog.mqtt")
        registrationsClient = configuration.registrations.map {
            connection($0, subscribing: [DeviceTopic.filter(.register)], label: "registration.mqtt")
        }
        listenClient = configuration.listen.map {
            connection($0, subscribing: [DeviceTopic.listen(hubID: configuration.hubID)], label: "mic.mqtt")
        }
        accounts = configuration.accounts.map {
            BrokerAccounts(
                client: connection($0, subscribing: [BrokerAccounts.responseTopic], label: "dynsec.mqtt"),
                logger: Logger(label: "\(logger.label).accounts"))
        }
        replies = Replies(events: eventsClient, audio: audioClient, registrations: registrationsClient, ackQoS: ingressConfiguration.ackQoS)
        let commandsClient = configuration.commands.map {
            connection($0, subscribing: [DeviceTopic.filter(.commandResult), DeviceTopic.filter(.shadowReport), DeviceTopic.filter(.shadowGet)], label: "commands.mqtt")
        }
        self.commandsClient = commandsClient
        commands = commandsClient.map { client in DeviceInbox(client: client) { DeviceInbound.read($0, channels: Self.commandChannels) } }
        downlink = commandsClient.map(Downlink.init)
        if commandsClient != nil {
            let (stream, continuation) = AsyncStream.makeStream(of: LinkChange.self, bufferingPolicy: .bufferingNewest(64))
            (commandsLink, commandsLinkContinuation) = (stream, continuation)
        } else {
            (commandsLink, commandsLinkContinuation) = (nil, nil)
        }
        let events = eventsClient
        ingress = DeviceIngress(
            inbox: DeviceInbox(client: events) { DeviceInbound.read($0, channels: Self.eventsChannels) },
            link: eventsLink.stream,
            replies: replies, outbox: outbox, configuration: ingressConfiguration, activity: activity,
            isRegistered: isRegistered, logger: Logger(label: "edge-gateway.ingress"))
        audio = DeviceInbox(client: audioClient) { DeviceInbound.read($0, channels: Self.audioChannels) }
        registrations = registrationsClient.map { client in DeviceInbox(client: client) { DeviceInbound.read($0, channels: Self.registerChannels) } }
        listenRequests = listenClient.map { client in DeviceInbox(client: client) { ListenRequest(payload: $0.payload) } }
    }

    /// Applies new device settings (configuration reload): the ingress's limits and the acks' QoS,
    /// from the next message and the next ack.
    public func update(_ ingress: DeviceIngressConfiguration) {
        self.ingress.update(ingress)
        replies.ackQoSSetting.set(ingress.ackQoS)
    }

    /// The channels each connection reads (made once, not per message).
    static let eventsChannels: Set<DeviceTopic.Channel> = [.event, .telemetry, .status]
    static let audioChannels: Set<DeviceTopic.Channel> = [.audio]
    static let registerChannels: Set<DeviceTopic.Channel> = [.register]
    static let commandChannels: Set<DeviceTopic.Channel> = [.commandResult, .shadowReport, .shadowGet]

    /// The connections that carry no acknowledged publishes of their own: their connection
    /// events are only logged (by the client).
    private var quietClients: [MQTTClient] { [audioClient] + [registrationsClient, listenClient].compactMap { $0 } }

    public func run() async throws {
        eventsClient.start()
        for client in quietClients { client.start() }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await event in self.eventsClient.events {
                    if let change = LinkChange(event) { self.eventsLink.continuation.yield(change) }
                }
                self.eventsLink.continuation.finish()
            }
            for client in quietClients {
                group.addTask { for await _ in client.events {} }
            }
            if let commandsClient, let continuation = commandsLinkContinuation {
                commandsClient.start()
                group.addTask {
                    for await event in commandsClient.events {
                        if let change = LinkChange(event) { continuation.yield(change) }
                    }
                    continuation.finish()
                }
            }
            if let accounts {
                group.addTask { await accounts.run() }
            }
            // Every consumer (ingress, dialogs, registration, microphone) stops before this
            // service is told to: then nothing more is sent, and the connections can close.
            try? await gracefulShutdown()
            for client in quietClients { client.pauseReading() }
            commandsClient?.pauseReading()
            await withTaskGroup(of: Void.self) { closing in
                closing.addTask { await self.eventsClient.stop() }
                if let commandsClient = self.commandsClient { closing.addTask { await commandsClient.stop() } }
                for client in self.quietClients { closing.addTask { await client.stop() } }
                if let accounts = self.accounts { closing.addTask { await accounts.stop() } }
            }
            group.cancelAll()
        }
        logger.info("device broker connections closed")
    }

    /// Sends acks and responses on the connection whose broker identity may publish them:
    /// acks on the events connection (at `devices.ackQos`), registration results on the
    /// registration connection, everything else on the dialog connection (QoS 1).
    public struct Replies: DeviceReplies {
        let events: MQTTClient
        let audio: MQTTClient
        let registrations: MQTTClient?
        /// The acks' QoS (0 or 1), changed by ``DeviceLink/update(_:)``.
        let ackQoSSetting: AckQoS

        final class AckQoS: Sendable {
            private let value: Atomic<Int32>
            init(_ qos: Int32) { value = Atomic(qos) }
            var qos: Int32 { value.load(ordering: .relaxed) }
            func set(_ qos: Int32) { value.store(qos, ordering: .relaxed) }
        }

        init(events: MQTTClient, audio: MQTTClient, registrations: MQTTClient?, ackQoS: Int32) {
            self.events = events
            self.audio = audio
            self.registrations = registrations
            ackQoSSetting = AckQoS(ackQoS)
        }

        /// The QoS acks go out at now.
        public var ackQoS: Int32 { ackQoSSetting.qos }

        public func send(_ ack: DeviceAck) throws(DeviceReplyError) {
            try Self.publish(on: events, topic: DeviceTopic.ack(for: ack.device), payload: ack.payload, qos: ackQoS)
        }

        public func send(_ response: DeviceResponse) throws(DeviceReplyError) {
            let client = response.kind == .registrationResult ? (registrations ?? audio) : audio
            try Self.publish(on: client, topic: DeviceTopic.response(for: response.device), payload: response.bytes)
        }

        private static func publish(on client: MQTTClient, topic: String, payload: [UInt8], qos: Int32 = 1) throws(DeviceReplyError) {
            do {
                try client.publish(topic: topic, payload: payload, qos: qos)
            } catch {
                throw DeviceReplyError("\(error)")
            }
        }
    }

    /// Sends what goes to devices for commands and shadows, on the commands connection (QoS 1).
    public struct Downlink: DeviceDownlink {
        let client: MQTTClient

        public func send(_ message: DownlinkMessage, to device: DeviceID, payload: [UInt8]) throws(DeviceReplyError) {
            let topic =
                switch message {
                case .command: DeviceTopic.command(for: device)
                case .shadowDelta: DeviceTopic.shadowDelta(for: device)
                case .shadowDocument: DeviceTopic.shadow(for: device)
                }
            do {
                try client.publish(topic: topic, payload: payload, qos: 1)
            } catch {
                throw DeviceReplyError("\(error)")
            }
        }
    }
}
