import GatewayCore
import Testing

@Suite struct DeviceIDTests {
    @Test(arguments: ["a", "dev-1", "DEV_2", String(repeating: "x", count: 64)])
    func acceptsValidIdentifiers(_ id: String) {
        #expect(DeviceID(id)?.rawValue == id)
    }

    @Test(arguments: ["", "a/b", "+", "#", "dev.1", "dév", "a b", String(repeating: "x", count: 65)])
    func rejectsInvalidIdentifiers(_ id: String) {
        #expect(DeviceID(id) == nil)
    }

    @Test func escapesUntrustedBytesForLogs() {
        let escaped = DeviceID.escapedForLog([0x61, 0x0A, 0xFF, UInt8(ascii: "\\")])
        #expect(escaped == "a\\x0A\\xFF\\x5C")
    }
}
