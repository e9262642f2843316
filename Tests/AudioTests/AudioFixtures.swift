import Foundation

/// Test audio written to a temporary directory and served through ALSA's `file` plugin over the `null`
/// PCM, defined in-process by a configuration text (no sound card, no ~/.asoundrc).
struct AudioFixture {
    static let sampleRate = 16000
    static let frame = 320

    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("audio-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Writes `samples` as raw S16_LE and returns the path.
    func write(_ samples: [Int16], name: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try Data(Self.littleEndianBytes(samples)).write(to: url)
        return url.path
    }

    /// A capture PCM named `name` that reads `infile` (raw S16_LE) and discards what it would record.
    static func capturePCM(_ name: String, infile: String) -> String {
        """
        pcm.\(name) {
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "\(infile)"
            format "raw"
        }
        """
    }

    /// A playback PCM named `name` that writes what is played to `file` (raw S16_LE).
    static func playbackPCM(_ name: String, file: String) -> String {
        """
        pcm.\(name) {
            type file
            slave { pcm "null" }
            file "\(file)"
            format "raw"
        }
        """
    }

    static func littleEndianBytes(_ samples: [Int16]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(samples.count * 2)
        for sample in samples {
            let bits = UInt16(bitPattern: sample)
            bytes.append(UInt8(truncatingIfNeeded: bits))
            bytes.append(UInt8(truncatingIfNeeded: bits >> 8))
        }
        return bytes
    }

    static func samples(fromLittleEndian bytes: [UInt8]) -> [Int16] {
        stride(from: 0, to: bytes.count - 1, by: 2).map { Int16(bitPattern: UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8) }
    }
}

/// Deterministic synthetic "speech": voiced bursts between stretches of room noise, at known offsets.
struct SpeechSignal {
    /// Sample ranges of the bursts.
    var bursts: [Range<Int>] = []
    var samples: [Int16] = []
    private var noise = NoiseGenerator(seed: 0x5EED)

    /// Noise RMS in sample units: about -42 dBFS, well above the VAD's absolute minimum (-55 dBFS), so
    /// the adaptive floor, not the minimum, separates speech (bursts about -25 dBFS) from it.
    static let noiseAmplitude = 260.0

    /// `pattern` alternates noise and burst durations in seconds, starting with noise.
    init(pattern: [Double], burstAmplitude: Double = 5000) {
        for (index, seconds) in pattern.enumerated() {
            let count = Int(seconds * Double(AudioFixture.sampleRate))
            if index % 2 == 0 {
                appendNoise(count: count)
            } else {
                let start = samples.count
                appendBurst(count: count, amplitude: burstAmplitude)
                bursts.append(start..<samples.count)
            }
        }
    }

    mutating func appendNoise(count: Int) {
        for _ in 0..<count { samples.append(Int16(noise.next() * Self.noiseAmplitude)) }
    }

    /// Harmonics 1...8 (amplitude 1/k) of a pitch gliding between 120 and 220 Hz, amplitude-modulated
    /// at a syllable rate of 4 Hz (never below 20 %), with 10 ms fades, plus the room noise.
    mutating func appendBurst(count: Int, amplitude: Double) {
        let rate = Double(AudioFixture.sampleRate)
        let fade = Int(0.01 * rate)
        var phase = 0.0
        for n in 0..<count {
            let t = Double(n) / rate
            let pitch = 170 + 50 * sin(2 * Double.pi * 0.7 * t)
            phase += 2 * Double.pi * pitch / rate
            var voiced = 0.0
            for k in 1...8 { voiced += sin(Double(k) * phase) / Double(k) }
            let envelope = 0.6 + 0.4 * sin(2 * Double.pi * 4 * t - Double.pi / 2)
            let edge = min(1, Double(min(n, count - 1 - n)) / Double(fade))
            let value = amplitude / 1.6 * voiced * envelope * edge + noise.next() * Self.noiseAmplitude
            samples.append(Int16(max(-32768, min(32767, value))))
        }
    }
}

/// A small deterministic noise source (xorshift), roughly Gaussian with unit RMS (sum of uniforms).
struct NoiseGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    private mutating func uniform() -> Double {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Double(state >> 11) / Double(1 << 53)
    }

    /// Sum of 12 uniforms minus 6: mean 0, variance 1.
    mutating func next() -> Double {
        var sum = 0.0
        for _ in 0..<12 { sum += uniform() }
        return sum - 6
    }
}

func rmsDBFS(_ samples: ArraySlice<Int16>) -> Double {
    var sum = 0.0
    for sample in samples { sum += Double(sample) * Double(sample) }
    return 20 * log10(max((sum / Double(max(samples.count, 1))).squareRoot(), 1e-9) / 32768)
}
