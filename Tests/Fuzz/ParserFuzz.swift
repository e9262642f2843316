// libFuzzer target for what a device controls: the topic and the payload of an event.
//
// Built by scripts/fuzz with `swiftc -sanitize=fuzzer,address` over GatewayCore's parsing
// sources (everything but the logging helper), so it runs the very code the daemon runs.
// Input layout: the bytes up to the first 0x00 are the topic, the rest is the payload (an
// input without 0x00 is a payload on `device/fuzz/event`).
//
// Checked for every input, beyond "does not crash or trip AddressSanitizer":
// - a payload the parser accepts gives an upstream envelope that is itself valid JSON whose
//   eventId, deviceId and data read back exactly as accepted;
// - a device id the topic parser accepts passes DeviceID's own check and is at most 64 bytes;
// - a rejected device id's log form contains no control characters;
// - an audio message (CONTRACTS.md §1 framing) that parses encodes back to the same message.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let topicBytes: [UInt8]
    let payload: [UInt8]
    if let split = input.firstIndex(of: 0) {
        topicBytes = Array(input[..<split])
        payload = Array(input[(split + 1)...])
    } else {
        topicBytes = Array("device/fuzz/event".utf8)
        payload = input
    }

    let device: DeviceID
    switch DeviceTopic.parse(topicBytes) {
    case .success(let topic):
        device = topic.device
        let raw = Array(device.rawValue.utf8)
        check(raw.count <= DeviceID.maxLength && DeviceID.isValid(raw), "accepted device id \(raw)")
    case .failure(.invalidDeviceID(let escaped)):
        check(!escaped.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, "escaped id has a control character")
        return 0
    case .failure(.notADeviceTopic):
        return 0
    }

    if case .success(let message) = AudioMessage.parse(payload) {
        // What is accepted encodes back to a message that parses to the same thing.
        check(AudioMessage.parse(message.bytes) == .success(message), "audio message does not round-trip")
    }
    guard case .success(let event) = DeviceEvent.parse(device: device, payload: payload, maxPayloadBytes: 65536) else {
        return 0
    }
    let envelope = UpstreamEnvelope.encode(event, hubID: "hub-1", receivedAt: 1_700_000_000_000)
    let members: [JSONScanner.Member]
    do {
        guard let found = try JSONScanner.topLevelMembers(of: envelope) else {
            fail("envelope is not an object")
        }
        members = found
    } catch {
        fail("envelope is not valid JSON: \(error)")
    }
    func member(_ key: String) -> JSONScanner.Member? { members.last { $0.key == key } }
    guard let eventID = member("eventId"), let deviceID = member("deviceId"), let data = member("data") else {
        fail("envelope lacks eventId, deviceId or data")
    }
    check(JSONScanner.decodeString(envelope, range: eventID.range) == event.eventID, "eventId does not read back")
    check(JSONScanner.decodeString(envelope, range: deviceID.range) == device.rawValue, "deviceId does not read back")
    check(Array(envelope[data.range]) == event.data, "data is not forwarded byte for byte")
    return 0
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fail(message()) }
}

private func fail(_ message: String) -> Never {
    fatalError("fuzz invariant broken: \(message)")
}
