/// The device shadow (`shadow.*`, CONTRACTS.md §7): the limits ``ShadowStore`` and the message
/// parsers apply. The store's file is given to ``ShadowStore`` by the caller.
public struct ShadowConfiguration: Sendable, Equatable {
    /// Whether the daemon keeps shadows at all (`shadow.enabled`).
    public var enabled = true
    /// The largest whole document, serialized as it goes out (`{"desired","reported","version",
    /// "updatedAt"}`), in bytes (`shadow.maxBytes`); a change that would make it larger is refused.
    public var maxBytes = 8192
    /// The largest update or report message read, in bytes (`shadow.maxMessageBytes`); checked
    /// before the message is parsed.
    public var maxMessageBytes = 8192
    /// The most devices with a document (`shadow.maxDevices`); a change that would add one more is
    /// refused. Documents are kept in memory as their JSON, so `maxDevices × maxBytes` bounds the
    /// store's memory (8 MiB at the defaults).
    public var maxDevices = 1000

    public init(enabled: Bool = true, maxBytes: Int = 8192, maxMessageBytes: Int = 8192, maxDevices: Int = 1000) {
        self.enabled = enabled
        self.maxBytes = maxBytes
        self.maxMessageBytes = maxMessageBytes
        self.maxDevices = maxDevices
    }
}
