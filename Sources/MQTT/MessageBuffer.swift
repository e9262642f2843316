import Foundation

/// A bounded buffer from the MQTT network thread to one async consumer.
///
/// The producer (a C callback on libmosquitto's thread) blocks while the buffer is full, which is
/// the backpressure: the network thread stops reading, TCP's window closes, and the broker holds
/// the messages. The consumer takes everything available at once, so one wake-up serves a burst.
public final class MessageBuffer: AsyncSequence, @unchecked Sendable {
    public typealias Element = [MQTTMessage]

    // All fields are guarded by `condition`.
    private let condition = NSCondition()
    private var items: [MQTTMessage] = []
    private var waiter: CheckedContinuation<[MQTTMessage]?, Never>?
    private var finished = false
    private var bytes = 0
    /// Producers blocked in `push` because the buffer is full.
    private var waitingProducers = 0
    private let capacity: Int
    private let byteCapacity: Int
    private let maxBatch: Int

    /// - Parameters:
    ///   - capacity: most messages held.
    ///   - byteCapacity: most payload bytes held (one message is always let in, however large).
    init(capacity: Int, byteCapacity: Int = .max, maxBatch: Int = 1024) {
        self.capacity = Swift.max(capacity, 1)
        self.byteCapacity = Swift.max(byteCapacity, 1)
        self.maxBatch = Swift.max(maxBatch, 1)
    }

    /// One message (as ``push(contentsOf:)``). Waits while full; drops nothing.
    func push(_ message: MQTTMessage) {
        push(contentsOf: [message])
    }

    /// Called on the network thread with what one pass of its loop read, in order: one lock and at
    /// most one wake-up of the consumer for the lot. Waits for room before each message that does
    /// not fit (the consumer is handed what is there first); drops nothing.
    func push(contentsOf batch: [MQTTMessage]) {
        guard !batch.isEmpty else { return }
        condition.lock()
        for message in batch {
            while (items.count >= capacity || (bytes + message.payload.count > byteCapacity && !items.isEmpty)) && !finished {
                if let waiter {
                    // The consumer waits for what this pass already added: hand it over, then look again.
                    self.waiter = nil
                    let taken = takeLocked()
                    condition.unlock()
                    waiter.resume(returning: taken)
                    condition.lock()
                    continue
                }
                waitingProducers += 1
                condition.wait()
                waitingProducers -= 1
            }
            if finished {
                condition.unlock()
                return
            }
            items.append(message)
            bytes += message.payload.count
        }
        if let waiter {
            self.waiter = nil
            let taken = takeLocked()
            condition.unlock()
            waiter.resume(returning: taken)
        } else {
            condition.unlock()
        }
    }

    /// Whether a producer waits for room (backpressure is on); for tests to wait for, not to poll in the product.
    var isProducerWaiting: Bool {
        condition.lock()
        defer { condition.unlock() }
        return waitingProducers > 0
    }

    /// Whether the consumer waits for a message.
    var isConsumerWaiting: Bool {
        condition.lock()
        defer { condition.unlock() }
        return waiter != nil
    }

    /// No more messages will be pushed; the consumer drains what is left, then sees the end.
    func finish() {
        condition.lock()
        finished = true
        let waiter = self.waiter
        self.waiter = nil
        // A waiting consumer found the buffer empty; anything left is for its next call.
        condition.broadcast()
        condition.unlock()
        waiter?.resume(returning: nil)
    }

    private func takeLocked() -> [MQTTMessage] {
        let batch: [MQTTMessage]
        if items.count <= maxBatch {
            batch = items
            items.removeAll(keepingCapacity: true)
        } else {
            batch = Array(items.prefix(maxBatch))
            items.removeFirst(maxBatch)
        }
        bytes -= batch.reduce(0) { $0 + $1.payload.count }
        condition.broadcast()
        return batch
    }

    func next() async -> [MQTTMessage]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[MQTTMessage]?, Never>) in
            condition.lock()
            if !items.isEmpty {
                let batch = takeLocked()
                condition.unlock()
                continuation.resume(returning: batch)
            } else if finished {
                condition.unlock()
                continuation.resume(returning: nil)
            } else {
                waiter = continuation
                condition.unlock()
            }
        }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let buffer: MessageBuffer
        public mutating func next() async -> [MQTTMessage]? { await buffer.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: self) }
}
