/// Which broker address a client tries next and how long it waits first: the rotation over
/// ``MQTTClientConfiguration/addresses`` and the backoff streak (``ReconnectBackoff``).
///
/// - Every attempt that ends (a failed connect, or a connection lost) moves to the next address,
///   wrapping around; with one address it stays.
/// - The streak of attempts starts over only when the connection that ended had been up (since
///   CONNACK) for at least `minConnected`; a shorter one counts as a failure. So after a node that
///   served for a while dies, the next address is tried within the quick attempts (about a
///   second), while a node that accepts and drops again and again meets the growing backoff.
///
/// A value owned by the client's network thread; pure, so it is tested without a broker or clock.
public struct ConnectPlan: Sendable, Equatable {
    public let addresses: [MQTTBrokerAddress]
    public let backoff: ReconnectBackoff
    public let minConnected: Duration
    /// The index of the address the next attempt uses.
    public private(set) var index: Int
    /// Attempts in the current streak (0: the next one is the first of a streak).
    public private(set) var attempt = 0

    /// What follows an attempt that ended.
    public struct Step: Sendable, Equatable {
        /// The wait before the next attempt, in milliseconds.
        public var delayMilliseconds: Double
        /// The address of the attempt that ended, and of the next one.
        public var from: MQTTBrokerAddress
        public var to: MQTTBrokerAddress
        /// The streak number of the next attempt (0 after a reset).
        public var attempt: Int
        public var changesAddress: Bool { from != to }
    }

    public init(addresses: [MQTTBrokerAddress], startIndex: Int = 0, backoff: ReconnectBackoff, minConnected: Duration) {
        precondition(!addresses.isEmpty, "a connect plan needs at least one address")
        self.addresses = addresses
        self.index = ((startIndex % addresses.count) + addresses.count) % addresses.count
        self.backoff = backoff
        self.minConnected = minConnected
    }

    /// Where a client with `count` addresses starts: the first, or (``MQTTAddressOrder/random``) any.
    public static func startIndex(count: Int, order: MQTTAddressOrder, using generator: inout some RandomNumberGenerator) -> Int {
        guard count > 1, order == .random else { return 0 }
        return Int.random(in: 0..<count, using: &generator)
    }

    /// The wait before the very first connect, in milliseconds: `unit` (uniform in 0...1) of `jitterSeconds`.
    public static func startDelayMilliseconds(jitterSeconds: Double, unit: Double) -> Double {
        max(jitterSeconds, 0) * 1000 * min(max(unit, 0), 1)
    }

    /// The address the next attempt uses.
    public var current: MQTTBrokerAddress { addresses[index] }

    /// An attempt ended: `connectedFor` is how long its connection was up (nil: no CONNACK);
    /// `unit` is a uniform sample in 0...1 for the jitter. Moves to the next address.
    public mutating func ended(connectedFor: Duration?, unit: Double) -> Step {
        if let connectedFor, connectedFor >= minConnected {
            attempt = 0
        }
        let delay = backoff.delay(attempt: attempt, unit: unit)
        attempt += 1
        let from = current
        index = (index + 1) % addresses.count
        return Step(delayMilliseconds: delay, from: from, to: current, attempt: attempt)
    }
}
