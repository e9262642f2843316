/// Puts the frames of one audio session back in sequence order.
///
/// Frames arriving out of order within `window` of the next expected one are held until the
/// missing ones come. A frame further ahead than that means the missing ones are not coming:
/// they are skipped and counted in ``gaps``, and what was held before it goes out. Frames that
/// come again, or after their place was given up, are dropped and counted in ``late``.
public struct FrameReorderBuffer<Payload: Sendable>: Sendable {
    public let window: Int
    /// The sequence number expected next.
    public private(set) var next: Int64 = 0
    /// Frames skipped because they never came in time.
    public private(set) var gaps = 0
    /// Frames dropped because they came twice or too late.
    public private(set) var late = 0
    private var held: [Int64: Payload] = [:]

    public init(window: Int = 8) {
        self.window = max(window, 1)
    }

    /// Frames currently held for a missing predecessor.
    public var heldCount: Int { held.count }

    /// Takes one frame; returns the frames that can now go on, in order.
    public mutating func accept(sequence: UInt32, _ payload: Payload) -> [Payload] {
        let sequence = Int64(sequence)
        guard sequence >= next, held[sequence] == nil else {
            late += 1
            return []
        }
        held[sequence] = payload
        var ready: [Payload] = []
        if sequence >= next + Int64(window) {
            // Too far ahead: give up on what is missing so the newest frame sits in the window.
            advance(to: sequence - Int64(window) + 1, into: &ready)
        }
        while let payload = held.removeValue(forKey: next) {
            ready.append(payload)
            next += 1
        }
        return ready
    }

    /// The session ended: everything still held, in order, with the missing frames up to
    /// `lastSequence` (when the device said) counted as gaps.
    public mutating func finish(lastSequence: UInt32?) -> [Payload] {
        var ready: [Payload] = []
        let end = max(lastSequence.map { Int64($0) + 1 } ?? 0, (held.keys.max() ?? -1) + 1)
        advance(to: end, into: &ready)
        return ready
    }

    /// Gives up on every missing frame before `end`. The work is bounded by the frames held
    /// (at most `window` + 1), never by the distance to `end`: a sequence number of
    /// `0xFFFFFFF0` must cost no more than the next one in line.
    private mutating func advance(to end: Int64, into ready: inout [Payload]) {
        guard next < end else { return }
        let passed = held.keys.filter { $0 < end }.sorted()
        for sequence in passed {
            if let payload = held.removeValue(forKey: sequence) { ready.append(payload) }
        }
        gaps += Int(end - next) - passed.count
        next = end
    }
}
