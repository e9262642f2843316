import Foundation
import Testing

extension IntegrationSuite {
    @Suite struct TLSUpstreamTests {
        @Test func eventsArriveOverTLSWithUsernameAndPassword() async throws {
            try await withSandbox { sandbox in
                let bed = try await TestBed.start(in: sandbox, upstream: .tlsBroker(user: "hub-test", password: "s3cret-pw"))
                let devices = ["tls-1", "tls-2"]
                let sent = Dictionary(uniqueKeysWithValues: devices.map { ($0, DeviceEvent.series(deviceId: $0, count: 10)) })
                try await bed.publishConcurrently(sent)
                try await bed.waitForAcks(count: 20)
                let upstream = try await bed.waitForUpstream(eventIds: Set(sent.values.joined().map(\.eventId)))
                #expect(DeliveryCheck.orderProblems(upstream, sent: sent).isEmpty,
                        "\(DeliveryCheck.orderProblems(upstream, sent: sent))")
                let log = bed.gateway.logText
                #expect(!log.contains("s3cret-pw"), "the password must not be logged")
            }
        }
    }
}
