import Synchronization

/// A component's own state, published as values (STYLE.md habit 13): the component that owns the
/// state keeps the ``StatePublisher`` private and is the only one that writes; everyone else gets the
/// read-only ``PublishedState`` from ``reader`` and reads ``PublishedState/current`` or iterates
/// ``PublishedState/updates``.
///
/// Guarantees:
/// - ``PublishedState/current`` is the value after the last completed ``update(_:)``.
/// - A subscriber to ``PublishedState/updates`` first gets the value current when it subscribed
///   (so a late subscriber still gets the latest), then every later value, in the order the updates
///   were made. Each subscriber has its own buffer: a reader must keep iterating or end its loop.
/// - The updates end (the loops of readers finish) when the publisher is gone.
public final class StatePublisher<Value: Sendable>: Sendable {
    private let cell: StateCell<Value>

    public init(_ initial: Value) {
        cell = StateCell(initial)
    }

    deinit {
        cell.finish()
    }

    /// The read-only view handed to readers.
    public var reader: PublishedState<Value> { PublishedState(cell: cell) }

    /// The value after the last update (for the owner's own use).
    public var current: Value { cell.current }

    /// Changes the value and hands the new one to every subscriber.
    @discardableResult
    public func update<Result>(_ body: (inout Value) -> Result) -> Result {
        cell.update(body)
    }
}

/// The reader's side of a ``StatePublisher``: the latest value, and the values as they change.
/// It cannot write.
public struct PublishedState<Value: Sendable>: Sendable {
    fileprivate let cell: StateCell<Value>

    /// The value after the last update.
    public var current: Value { cell.current }

    /// The current value, then every later one in order; ends when the publisher is gone.
    public var updates: AsyncStream<Value> { cell.subscribe() }

    /// The first value (the current one included) that satisfies `predicate`, or `nil` when the
    /// task is cancelled or the publisher is gone first. A value that holds only briefly is not
    /// missed: every update is looked at.
    public func first(where predicate: (Value) -> Bool) async -> Value? {
        for await value in updates where predicate(value) {
            return value
        }
        return nil
    }
}

/// The storage both sides share; only ``StatePublisher`` reaches ``update(_:)``.
final class StateCell<Value: Sendable>: Sendable {
    private struct Storage {
        var value: Value
        var subscribers: [Int: AsyncStream<Value>.Continuation] = [:]
        var nextSubscriber = 0
    }

    private let storage: Mutex<Storage>

    init(_ initial: Value) {
        storage = Mutex(Storage(value: initial))
    }

    var current: Value { storage.withLock { $0.value } }

    func update<Result>(_ body: (inout Value) -> Result) -> Result {
        storage.withLock { storage in
            let result = body(&storage.value)
            // Under the lock, so every subscriber sees the updates in the order they were made.
            for subscriber in storage.subscribers.values { subscriber.yield(storage.value) }
            return result
        }
    }

    func subscribe() -> AsyncStream<Value> {
        let (stream, continuation) = AsyncStream.makeStream(of: Value.self, bufferingPolicy: .unbounded)
        let id: Int? = storage.withLock { storage in
            defer { storage.nextSubscriber += 1 }
            storage.subscribers[storage.nextSubscriber] = continuation
            continuation.yield(storage.value)
            return storage.nextSubscriber
        }
        continuation.onTermination = { [weak self] _ in
            guard let self, let id else { return }
            _ = self.storage.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Ends every subscriber's updates (the publisher is gone).
    func finish() {
        let subscribers = storage.withLock { storage in
            defer { storage.subscribers.removeAll() }
            return Array(storage.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }
}
