import Foundation
import Testing

@testable import MQTT

/// Waits, within a bound, for `condition` (an observable state, never a guess at timing).
func until(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for \(what)")
            return
        }
        try await Task.sleep(for: .milliseconds(1))
    }
}

@Suite struct MessageBufferTests {
    func message(_ index: Int) -> MQTTMessage {
        MQTTMessage(topic: Array("device/d/event".utf8), payload: Array("\(index)".utf8), qos: 1)
    }

    @Test func producerWaitsWhileFullAndNothingIsDropped() async throws {
        let buffer = MessageBuffer(capacity: 4, maxBatch: 3)
        let produced = ManagedCounter()
        let producer = Thread {
            for index in 0..<20 {
                buffer.push(self.message(index))
                produced.increment()
            }
            buffer.finish()
        }
        producer.start()
        // The producer fills the buffer and then waits for the consumer.
        try await until("the producer to wait for room") { buffer.isProducerWaiting }
        #expect(produced.value == 4)

        var received: [String] = []
        for await batch in buffer {
            #expect(batch.count <= 3)
            received += batch.map { String(decoding: $0.payload, as: UTF8.self) }
        }
        #expect(received == (0..<20).map(String.init))
    }

    @Test func byteCapacityHoldsBackLargeMessagesButAlwaysLetsOneIn() async throws {
        let buffer = MessageBuffer(capacity: 100, byteCapacity: 1000)
        let big = MQTTMessage(topic: Array("t".utf8), payload: Array(repeating: 0, count: 600), qos: 1)
        let produced = ManagedCounter()
        let producer = Thread {
            for _ in 0..<3 {
                buffer.push(big)
                produced.increment()
            }
            buffer.finish()
        }
        producer.start()
        // 600 bytes fit; a second 600 would exceed 1000, so the producer waits.
        try await until("the producer to wait for room") { buffer.isProducerWaiting }
        #expect(produced.value == 1)
        var count = 0
        for await batch in buffer { count += batch.count }
        #expect(count == 3)
    }

    @Test func aBatchLargerThanTheRoomWaitsPartwayDropsNothingAndKeepsOrder() async throws {
        let buffer = MessageBuffer(capacity: 4, maxBatch: 3)
        let batchesPushed = ManagedCounter()
        let producer = Thread {
            buffer.push(contentsOf: (0..<10).map(self.message))
            batchesPushed.increment()
            buffer.push(contentsOf: (10..<20).map(self.message))
            batchesPushed.increment()
            buffer.finish()
        }
        producer.start()
        // Four fit; the fifth waits for the consumer.
        try await until("the producer to wait for room") { buffer.isProducerWaiting }
        #expect(batchesPushed.value == 0)

        var received: [String] = []
        for await batch in buffer {
            #expect(batch.count <= 3)
            received += batch.map { String(decoding: $0.payload, as: UTF8.self) }
        }
        #expect(received == (0..<20).map(String.init))
        #expect(batchesPushed.value == 2)
    }

    @Test func aConsumerAlreadyWaitingIsHandedWhatFitsBeforeTheProducerWaits() async throws {
        // Without the hand-over inside the batch, the producer would wait for room that only
        // the waiting consumer can make, and the consumer for a wake-up that comes at the end.
        let buffer = MessageBuffer(capacity: 2)
        let consumer = Task { () -> [String] in
            var received: [String] = []
            for await batch in buffer { received += batch.map { String(decoding: $0.payload, as: UTF8.self) } }
            return received
        }
        try await until("the consumer to wait") { buffer.isConsumerWaiting }
        let producer = Thread {
            buffer.push(contentsOf: (0..<7).map(self.message))
            buffer.finish()
        }
        producer.start()
        #expect(await consumer.value == (0..<7).map(String.init))
    }

    @Test func finishLetsTheConsumerDrainWhatIsLeft() async {
        let buffer = MessageBuffer(capacity: 10)
        for index in 0..<5 { buffer.push(message(index)) }
        buffer.finish()
        var count = 0
        for await batch in buffer { count += batch.count }
        #expect(count == 5)
    }

    @Test func waitingConsumerIsWokenByPushAndByFinish() async throws {
        let buffer = MessageBuffer(capacity: 10)
        let consumer = Task { () -> Int in
            var count = 0
            for await batch in buffer { count += batch.count }
            return count
        }
        try await until("the consumer to wait") { buffer.isConsumerWaiting }
        buffer.push(message(1))
        try await until("the consumer to wait again") { buffer.isConsumerWaiting }
        buffer.push(message(2))
        buffer.finish()
        #expect(await consumer.value == 2)
    }
}

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}
