import Dispatch

/// Runs blocking work (opening a SQLite file, a `posix_fallocate`, reading `/proc`) on one of
/// Dispatch's threads, so no thread of Swift's cooperative pool waits on the disk or the kernel.
///
/// ```swift
/// let store = try await offThePool { try Outbox.open(configuration: store, logger: logger) }
/// ```
public func offThePool<T: Sendable, Failure: Error>(
    qos: DispatchQoS.QoSClass = .userInitiated, _ work: @escaping @Sendable () throws(Failure) -> T
) async throws(Failure) -> T {
    let result: Result<T, Failure> = await withCheckedContinuation { continuation in
        DispatchQueue.global(qos: qos).async {
            continuation.resume(returning: Result { () throws(Failure) -> T in try work() })
        }
    }
    return try result.get()
}
