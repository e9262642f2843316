import DeviceLink

extension DeviceIngressConfiguration {
    /// `limits.maxPayloadBytes`.
    init(_ v: inout ConfigValues, hubID: String) {
        self.init(hubID: hubID)
        maxPayloadBytes = v.int("limits.maxPayloadBytes", default: maxPayloadBytes, range: 64...(16 * 1024 * 1024))
    }
}
