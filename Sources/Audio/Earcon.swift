import Foundation

/// Short tones that tell someone at the hub what happened to what they said, when there is no
/// spoken reply to play: two rising notes for an answer, one low note for an error.
public enum Earcon: Sendable {
    case answered
    case failed

    /// The tone as 16-bit mono samples at `sampleRate`, with 10 ms fades so it does not click.
    public func samples(sampleRate: Int = 16000) -> [Int16] {
        let notes: [(frequency: Double, milliseconds: Int)] =
            switch self {
            case .answered: [(660, 110), (880, 140)]
            case .failed: [(330, 260)]
            }
        var samples: [Int16] = []
        for note in notes {
            let count = sampleRate * note.milliseconds / 1000
            let fade = max(1, sampleRate / 100)
            for index in 0..<count {
                let envelope = min(1, Double(min(index, count - 1 - index)) / Double(fade))
                let phase = 2 * Double.pi * note.frequency * Double(index) / Double(sampleRate)
                samples.append(Int16(8000 * envelope * sin(phase)))
            }
        }
        return samples
    }
}
