// libFuzzer target for what the cloud and devices control on the command and shadow surfaces
// (CONTRACTS.md §6, §7): cloud commands, device results, shadow updates and reports.
//
// Built by scripts/fuzz with `swiftc -sanitize=fuzzer,address` over GatewayCore and the parsing
// sources of Commands and Shadow (everything that needs no SQLite, logging or metrics), so it runs
// the very code the daemon runs. The first byte of an input picks the parser; the rest is the
// payload.
//
// Checked for every input, beyond "does not crash or trip AddressSanitizer":
// - an accepted cloud command gives a device payload and a status message that are valid JSON,
//   and its id is 1–64 characters without control characters;
// - a rejected one's status message is valid JSON too, its message exactly a contract reason;
// - a JSON value that parses encodes to bytes that parse back to the same value;
// - a shadow update or report that parses merges into a document (RFC 7386) whose delta and
//   encoding are valid JSON, and merging the same patch again changes nothing.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let payload = Array(input.dropFirst())
    let device = DeviceID("fuzz")!
    let limits = CommandLimits(maxPayloadBytes: 8192, maxTtlSeconds: 86_400)
    switch input[0] % 4 {
    case 0:
        switch CloudCommand.parse(device: device, payload: payload, nowMs: 1_700_000_000_000, limits: limits) {
        case .success(let command):
            check(!command.commandID.isEmpty && command.commandID.count <= 64, "command id length")
            check(!command.commandID.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }, "control character in id")
            let record = CommandRecord(
                device: device, commandID: command.commandID, name: command.name, params: command.params, expiresAt: command.expiresAt,
                receivedAt: command.receivedAt, status: .queued, result: nil, message: nil, updatedAt: command.receivedAt, attempts: 0,
                lastSentAt: nil, seq: 1, changeSeq: 1, reportedStatus: nil)
            checkJSON(CommandDeliveryPayload.encode(record), "device payload")
            checkJSON(CommandStatusMessage.encode(record, hubID: "hub-1"), "status message")
        case .failure(let rejection):
            let message = CommandStatusMessage.encode(rejection, device: device, hubID: "hub-1", at: 1)
            checkJSON(message, "rejection message")
            check(["queue full", "invalid command", "unknown device"].contains(rejection.reason.rawValue), "reason")
        }
    case 1:
        _ = DeviceCommandResult.parse(payload: payload, limits: limits)
    case 2:
        guard let value = try? JSONValue.parse(payload, maxBytes: 8192) else { return 0 }
        let again = try? JSONValue.parse(value.encoded(), maxBytes: .max)
        check(again == value, "JSON value does not round-trip")
    default:
        let patch: JSONObject
        if let update = try? ShadowUpdate.parse(payload, maxBytes: 8192) {
            patch = update.desired
        } else if let report = try? ShadowReport.parse(payload, maxBytes: 8192) {
            patch = report.reported
        } else {
            return 0
        }
        let base: JSONObject = ["a": 1, "b": ["c": "d"]]
        let merged = MergePatch.apply(patch: patch, to: base)
        check(MergePatch.apply(patch: patch, to: merged) == merged, "merge patch is not idempotent")
        checkJSON(JSONValue.object(merged).encoded(), "merged document")
        checkJSON(JSONValue.object(ShadowDelta.delta(desired: merged, reported: base)).encoded(), "delta")
    }
    return 0
}

private func checkJSON(_ bytes: [UInt8], _ what: String) {
    do {
        _ = try JSONScanner.topLevelMembers(of: bytes)
    } catch {
        fail("\(what) is not valid JSON: \(error)")
    }
}

private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fail(message()) }
}

private func fail(_ message: String) -> Never {
    fatalError("invariant broken: \(message)")
}
