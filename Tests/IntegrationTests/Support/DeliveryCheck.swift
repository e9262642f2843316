import Foundation
import Testing

/// Checks over everything that arrived upstream, returning readable problems (empty when all is well).
enum DeliveryCheck {
    /// Event ids of one device in order of first arrival.
    static func firstArrivals(_ events: [UpstreamEvent], deviceId: String) -> [String] {
        var seen: Set<String> = []
        var order: [String] = []
        for event in events where event.deviceId == deviceId {
            guard let id = event.eventId, seen.insert(id).inserted else { continue }
            order.append(id)
        }
        return order
    }

    /// Per device, the first arrivals must follow the order the device sent them in (CONTRACTS.md section 2).
    static func orderProblems(_ events: [UpstreamEvent], sent: [String: [DeviceEvent]]) -> [String] {
        var problems: [String] = []
        for (deviceId, deviceEvents) in sent.sorted(by: { $0.key < $1.key }) {
            let seqById = Dictionary(uniqueKeysWithValues: deviceEvents.map { ($0.eventId, $0.seq) })
            let arrivals = firstArrivals(events, deviceId: deviceId)
            let seqs = arrivals.compactMap { seqById[$0] }
            if let index = seqs.indices.dropLast().first(where: { seqs[$0] >= seqs[$0 + 1] }) {
                problems.append("\(deviceId): seq \(seqs[index + 1]) arrived after seq \(seqs[index]); first arrivals \(seqs)")
            }
            let unknown = arrivals.filter { seqById[$0] == nil }
            if !unknown.isEmpty { problems.append("\(deviceId): event ids never sent \(unknown.prefix(10))") }
        }
        return problems
    }

    /// Every copy of one event must be the same event (same id, same content).
    static func repeatProblems(_ events: [UpstreamEvent]) -> [String] {
        var firstCopy: [String: String] = [:]
        var problems: [String] = []
        for event in events {
            guard let eventId = event.eventId else {
                problems.append("upstream message without eventId: \(event)")
                continue
            }
            let key = "\(event.deviceId ?? "?")/\(eventId)"
            let content = JSON.canonical(event.object)
            if let first = firstCopy[key] {
                if first != content { problems.append("repeat of \(key) differs: \(first) vs \(content)") }
            } else {
                firstCopy[key] = content
            }
        }
        return problems
    }

    /// How often each event id arrived, for ids that arrived more than once.
    static func duplicates(_ events: [UpstreamEvent]) -> [String: Int] {
        var counts: [String: Int] = [:]
        for event in events { counts["\(event.deviceId ?? "?")/\(event.eventId ?? "nil")", default: 0] += 1 }
        return counts.filter { $0.value > 1 }
    }

    /// Problems with acks: shape, and (when given) statuses other than `expectedStatus`.
    static func ackProblems(_ acks: [Ack], expectedStatus: String? = nil) -> [String] {
        acks.flatMap { ack in
            var problems = ack.shapeProblems.map { "\(ack): \($0)" }
            if let expectedStatus, ack.status != expectedStatus {
                problems.append("\(ack): status is not \(expectedStatus)")
            }
            return problems
        }
    }
}

extension DeliveryCheck {
    /// Every sent event's first arrival upstream is in its device's sending order, and any repeat is
    /// an identical copy (at-least-once delivery, CONTRACTS.md §2).
    static func expectOrderedDelivery(
        _ upstream: [UpstreamEvent], sent: [String: [DeviceEvent]], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(orderProblems(upstream, sent: sent).isEmpty, "\(orderProblems(upstream, sent: sent))", sourceLocation: sourceLocation)
        #expect(repeatProblems(upstream).isEmpty, "\(repeatProblems(upstream).prefix(5))", sourceLocation: sourceLocation)
        for (device, events) in sent.sorted(by: { $0.key < $1.key }) {
            #expect(firstArrivals(upstream, deviceId: device) == events.map(\.eventId), "first arrivals of \(device)", sourceLocation: sourceLocation)
        }
    }
}
