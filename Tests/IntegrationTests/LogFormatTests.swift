import BrokerTestSupport
import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct LogFormatTests {
        @Test func jsonLogFormatWritesOneObjectPerLineWithLevelMessageAndMetadata() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, overrides: ["log.format": "json", "log.level": "debug"])
                try await bed.device("json-1").publish(lines: [#"{"eventId":"j-1","type":""}"#])
                try await bed.waitForAcks(count: 1)
                #expect(try await bed.gateway.terminate() == .exited(0))

                let lines = bed.gateway.logText.split(separator: "\n").map(String.init)
                #expect(!lines.isEmpty)
                let objects = lines.compactMap { JSON.object(Data($0.utf8)) }
                #expect(objects.count == lines.count, "lines that are not JSON objects: \(lines.filter { JSON.object(Data($0.utf8)) == nil }.prefix(3))")
                #expect(objects.allSatisfy { $0["level"] is String && $0["message"] is String && $0["time"] is String })
                let starting = objects.first { $0["message"] as? String == "starting edge-gateway" }
                #expect((starting?["version"] as? String)?.wholeMatch(of: /[0-9]+\.[0-9]+\.[0-9]+\S* \(\S+\)/) != nil, "\(String(describing: starting))")
                let rejection = objects.first { $0["message"] as? String == "rejected device event" }
                #expect(rejection?["device.id"] as? String == "json-1", "\(String(describing: rejection))")
                #expect(rejection?["event.id"] as? String == "j-1", "\(String(describing: rejection))")
                #expect(rejection?["reason"] as? String == "invalid type", "\(String(describing: rejection))")
            }
        }
    }
}
