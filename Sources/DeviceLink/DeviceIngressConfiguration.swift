/// Settings of the device-facing ingress. Defaults match `config/gateway.yaml`.
public struct DeviceIngressConfiguration: Sendable, Equatable {
    /// This hub's id, written into every upstream envelope.
    public var hubID: String
    /// Event and telemetry payloads above this size are rejected (`limits.maxPayloadBytes`).
    public var maxPayloadBytes: Int = 64 * 1024
    /// Batches that may wait for their commit at once; more makes the network thread wait.
    public var maxOutstandingBatches: Int = 4
    /// Events of devices without a registration on this hub are rejected (`devices.requireRegistration`).
    /// Off: any valid device id may send events (the open mode of a hub without registration).
    public var requireRegistration = false
    /// The QoS of acks to devices on `device/{id}/ack` (`devices.ackQos`, 0 or 1). QoS 0 keeps the
    /// guarantee (a device re-sends until it sees `stored` or `duplicate`, CONTRACTS.md §1; a lost
    /// ack costs one re-send that dedup answers `duplicate`) and spares the broker and the device a
    /// PUBACK per ack. Default 1: CONTRACTS.md §1 sends everything gateway → device at QoS 1.
    public var ackQoS: Int32 = 1

    public init(hubID: String) {
        self.hubID = hubID
    }
}
