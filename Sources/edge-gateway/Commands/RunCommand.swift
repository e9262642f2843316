import ArgumentParser
import Admin
import Foundation
import Logging
import BuildInfo
import Platform
import Reporting
import ServiceLifecycle

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
                "version": "\(GatewayVersion.version) (\(GatewayVersion.commit))",
                "config.file": "\(options.config ?? "-")", "store.path": "\(configuration.store.path)",
                "mqtt.broker": "\(configuration.deviceBroker.addresses[0])",
                "upstream.broker": "\(configuration.upstreamBroker.addresses.map(\.description).joined(separator: ","))",
                "upstream.tls": "\(configuration.upstreamBroker.tls != nil)",
            ])
        // Contradicting settings and protections turned off (`check-config` lists the same).
        for warning in configuration.warnings {
            logger.warning("\(warning)", metadata: ["config.key": "\(warning.key)"])
        }

        let parts = try await GatewayServices.build(configuration, metrics: metricsRegistry, logger: logger)
        let reload = ReloadService(file: options.config, started: configuration, logger: logger) { [logger] new, changed in
            await parts.apply(new, changed: changed, logger: logger)
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: parts.services(reload: reload),
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
        // What the process made the kernel write since it started, its last commit and checkpoint
        // included (SD-card wear; scripts/bench wear reads it).
        logger.info(
            "edge-gateway stopped",
            metadata: [
                "outbox.depth": "\(parts.outbox.depth.count)",
                "disk.writtenBytes": "\(ProcessIO.writtenBytes().map(String.init) ?? "unknown")",
            ])
    }
}
