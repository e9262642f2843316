import ArgumentParser
import Foundation
import BuildInfo
import Reporting

@main
struct EdgeGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge-gateway",
        abstract: "Durable store-and-forward gateway from device MQTT to the upstream cloud broker.",
        version: "edge-gateway \(GatewayVersion.version) (\(GatewayVersion.commit))",
        subcommands: [RunCommand.self, CheckConfigCommand.self, OutboxCommand.self, CommandsCommand.self, ShadowCommand.self],
        defaultSubcommand: RunCommand.self)
}

/// The `--config` option shared by every command.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file (environment variables override it). Without it, built-in defaults and the environment apply.")
    var config: String?

    /// Loads and validates the configuration; on a problem prints every bad key (and, with
    /// `warnings`, the warnings found with them) and exits 2.
    func load(printingWarnings warnings: Bool = false) async throws -> GatewayConfiguration {
        do {
            return try await GatewayConfiguration.load(file: config)
        } catch let errors as ConfigurationErrors {
            printError("invalid configuration:\n\(errors)")
            if warnings { CheckConfigCommand.printWarnings(errors.warnings) }
            throw ExitCode(2)
        } catch let error as ConfigurationError where error.key == "--config" {
            printError(error.problem)  // "cannot read FILE: no such file"
            throw ExitCode(2)
        } catch {
            printError("invalid configuration: \(error)")
            throw ExitCode(2)
        }
    }
}
