import ArgumentParser

@main
struct EdgeGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "edge-gateway",
        abstract: "Durable store-and-forward gateway from device MQTT to the upstream cloud broker.",
        subcommands: [RunCommand.self, CheckConfigCommand.self, OutboxCommand.self],
        defaultSubcommand: RunCommand.self)
}

/// The `--config` option shared by every command.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "YAML configuration file (environment variables override it). Without it, built-in defaults and the environment apply.")
    var config: String?
}
