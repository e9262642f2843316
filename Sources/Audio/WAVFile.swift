/// 16-bit PCM WAV as a text-to-speech program writes it to stdout (`espeak-ng --stdout`): the
/// header may carry a placeholder length (it did not know the length when it started), so the
/// data runs to the end of what was read.
public struct WAVFile: Sendable, Equatable {
    public var sampleRate: Int
    public var channels: Int
    /// Interleaved samples.
    public var samples: [Int16]

    /// Parses RIFF/WAVE with a 16-bit PCM `fmt ` chunk; nil for anything else.
    public static func parse(_ bytes: [UInt8]) -> WAVFile? {
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        guard bytes.count >= 12, bytes[0..<4].elementsEqual("RIFF".utf8), bytes[8..<12].elementsEqual("WAVE".utf8) else { return nil }
        var offset = 12
        var format: (rate: Int, channels: Int)?
        while offset + 8 <= bytes.count {
            let id = bytes[offset..<offset + 4]
            let size = u32(offset + 4)
            let body = offset + 8
            if id.elementsEqual("fmt ".utf8) {
                guard body + 16 <= bytes.count, u16(body) == 1, u16(body + 14) == 16 else { return nil }
                format = (u32(body + 4), u16(body + 2))
            } else if id.elementsEqual("data".utf8) {
                guard let format, format.channels > 0, format.rate > 0 else { return nil }
                let end = min(bytes.count, body + size)
                var samples: [Int16] = []
                samples.reserveCapacity((end - body) / 2)
                var index = body
                while index + 1 < end {
                    samples.append(Int16(bitPattern: UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8))
                    index += 2
                }
                samples.removeLast(samples.count % format.channels)
                return WAVFile(sampleRate: format.rate, channels: format.channels, samples: samples)
            }
            offset = body + size + (size & 1)
        }
        return nil
    }
}
