import DeviceLink

extension DeviceIngressConfiguration {
    /// `limits.maxPayloadBytes`, `devices.ackQos`, `devices.requireRegistration` (honoured only with
    /// `registration.enabled`: without it there is no registry to check against).
    init(_ v: inout ConfigValues, hubID: String) {
        self.init(hubID: hubID)
        maxPayloadBytes = v.int("limits.maxPayloadBytes", default: maxPayloadBytes, range: 64...(16 * 1024 * 1024))
        requireRegistration = v.bool("devices.requireRegistration", default: false)
        ackQoS = Int32(v.int("devices.ackQos", default: Int(ackQoS), range: 0...1))
    }
}
