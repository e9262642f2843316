import Commands
import Shadow

/// What the cloud-to-device part reads: the hub's id (it names the upstream topics), the commands'
/// settings (`commands.*`) and the shadow's (`shadow.*`).
public struct CloudToDeviceConfiguration: Sendable {
    public var hubID: String
    public var commands: CommandsConfiguration
    public var shadow: ShadowConfiguration
    /// `shadow.topic`: the devices' shadows on the upstream broker, `+` the device id: updates come
    /// on `<topic>/update`, documents go to `<topic>`, refusals to `<topic>/rejected`.
    public var shadowTopic: String

    public init(
        hubID: String, commands: CommandsConfiguration = CommandsConfiguration(), shadow: ShadowConfiguration = ShadowConfiguration(),
        shadowTopic: String = "hubs/{hubId}/shadow/+"
    ) {
        self.hubID = hubID
        self.commands = commands
        self.shadow = shadow
        self.shadowTopic = shadowTopic
    }

    /// Whether anything of it is on (otherwise the daemon makes no commands connection).
    public var enabled: Bool { commands.enabled || shadow.enabled }
}
