import Foundation
import Synchronization

/// What a callback saw, for a test to read afterwards.
final class Recorder<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])

    func append(_ element: Element) { storage.withLock { $0.append(element) } }
    var elements: [Element] { storage.withLock { $0 } }
}

/// `count` chunks of `bytes` bytes of a 440 Hz tone (16 kHz, 16 bit mono), as a finished stream.
func tone(chunks count: Int, bytes: Int = 3200) -> AsyncStream<[UInt8]> {
    let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
    for index in 0..<count {
        var chunk: [UInt8] = []
        chunk.reserveCapacity(bytes)
        for sample in 0..<(bytes / 2) {
            let t = Double(index * bytes / 2 + sample) / 16_000
            let value = Int16(8000 * sin(2 * Double.pi * 440 * t))
            chunk.append(UInt8(truncatingIfNeeded: value))
            chunk.append(UInt8(truncatingIfNeeded: value >> 8))
        }
        continuation.yield(chunk)
    }
    continuation.finish()
    return stream
}
