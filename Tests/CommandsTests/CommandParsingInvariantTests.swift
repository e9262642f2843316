import Commands
import GatewayCore
import Testing

/// Mutated payloads (a fixed seed, so a failure repeats): parsing never traps, and whatever it
/// accepts yields messages that are valid JSON and ids that follow the rules.
@Suite struct CommandParsingInvariantTests {
    /// SplitMix64: a small deterministic generator.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let seeds: [String] = [
        #"{"commandId":"c-1","name":"blink","params":{"times":3,"led":[1,2,{"a":null}]},"ttlSeconds":60}"#,
        #"{"commandId":"ü/ 1","name":"set","params":"x\"y","expiresAt":1700000005000}"#,
        #"{"commandId":"c","status":"succeeded","result":[true,false,-1.5e3],"message":"ok\n"}"#,
    ]
    static let tokens: [[UInt8]] = ["\"", "\\", "{", "}", "[", "]", ":", ",", "\\u0000", "\\ud800", "1e999", "-", "null", "\u{7F}", "é"]
        .map { Array($0.utf8) } + [[0x00], [0xFF], [0xC3], [0xED, 0xA0, 0x80]]

    static func mutate(_ bytes: [UInt8], _ random: inout Seeded) -> [UInt8] {
        var bytes = bytes
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            let at = Int.random(in: 0...bytes.count, using: &random)
            switch Int.random(in: 0..<3, using: &random) {
            case 0 where at < bytes.count: bytes.remove(at: at)
            case 1 where at < bytes.count: bytes[at] = UInt8.random(in: 0...255, using: &random)
            default: bytes.insert(contentsOf: tokens.randomElement(using: &random)!, at: at)
            }
        }
        return bytes
    }

    /// Valid JSON of any kind (`topLevelMembers` returns nil for a valid non-object).
    static func isValidJSON(_ bytes: [UInt8]) -> Bool {
        do {
            _ = try JSONScanner.topLevelMembers(of: bytes)
            return true
        } catch {
            return false
        }
    }

    @Test func mutatedPayloadsNeverTrapAndWhatIsAcceptedStaysValid() throws {
        var random = Seeded(state: 15)
        let limits = CommandLimits(maxPayloadBytes: 4096, maxTtlSeconds: 86400)
        let device = DeviceID("dev-1")!
        var accepted = (commands: 0, results: 0)
        for _ in 0..<20_000 {
            let payload = Self.mutate(Array(Self.seeds.randomElement(using: &random)!.utf8), &random)
            switch CloudCommand.parse(device: device, payload: payload, nowMs: 1_700_000_000_000, limits: limits) {
            case .success(let command):
                accepted.commands += 1
                #expect(!command.commandID.isEmpty && command.commandID.unicodeScalars.count <= 64)
                #expect(!command.commandID.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
                #expect(command.params.map(Self.isValidJSON) ?? true, "\(String(decoding: command.params ?? [], as: UTF8.self)) \(command.params ?? [])")
                let record = CommandRecord(
                    device: device, commandID: command.commandID, name: command.name, params: command.params, expiresAt: command.expiresAt,
                    receivedAt: command.receivedAt, status: .queued, result: nil, message: nil, updatedAt: command.receivedAt, attempts: 0,
                    lastSentAt: nil, seq: 1, changeSeq: 1, reportedStatus: nil)
                #expect(Self.isValidJSON(CommandDeliveryPayload.encode(record)))
                #expect(Self.isValidJSON(CommandStatusMessage.encode(record, hubID: "hub")))
            case .failure(let rejection):
                #expect(rejection.message.hasPrefix("invalid command: "))
                #expect(Self.isValidJSON(CommandStatusMessage.encode(rejection, device: device, hubID: "hub", at: 1)))
            }
            if case .success(let result) = DeviceCommandResult.parse(payload: payload, limits: limits) {
                accepted.results += 1
                #expect(result.result.map(Self.isValidJSON) ?? true)
                #expect(!result.commandID.isEmpty)
            }
        }
        // The mutations leave some payloads valid: the checks above did run.
        #expect(accepted.commands > 100 && accepted.results > 100, "\(accepted)")
    }
}
