import Commands

/// What the cloud-to-device part reads: the hub's id (it names the upstream topics) and the
/// commands' settings (`commands.*`).
public struct CloudToDeviceConfiguration: Sendable {
    public var hubID: String
    public var commands: CommandsConfiguration

    public init(hubID: String, commands: CommandsConfiguration = CommandsConfiguration()) {
        self.hubID = hubID
        self.commands = commands
    }

    /// Whether anything of it is on (otherwise the daemon makes no commands connection).
    public var enabled: Bool { commands.enabled }
}
