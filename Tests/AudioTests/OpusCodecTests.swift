import Audio
import Foundation
import Testing

@Suite struct OpusCodecTests {
    /// 1 s of a 440 Hz tone at 16 kHz, as S16 samples.
    static func tone(seconds: Double = 1, frequency: Double = 440, sampleRate: Double = 16000) -> [Int16] {
        (0..<Int(seconds * sampleRate)).map { Int16(8000 * sin(2 * Double.pi * frequency * Double($0) / sampleRate)) }
    }

    @Test func roundTripKeepsTheSignal() throws {
        let encoder = try OpusEncoder(sampleRate: 16000, channels: 1, bitrate: 24000)
        let decoder = try OpusDecoder(sampleRate: 16000, channels: 1)
        let input = Self.tone()
        let frame = encoder.frameSize(milliseconds: 20)
        var output: [Int16] = []
        var packetBytes = 0
        for start in stride(from: 0, to: input.count - frame + 1, by: frame) {
            let packet = try encoder.encode(Array(input[start..<start + frame]))
            packetBytes += packet.count
            let pcm = try decoder.decode(packet)
            #expect(pcm.count == frame * 2)
            output += stride(from: 0, to: pcm.count, by: 2).map { Int16(bitPattern: UInt16(pcm[$0]) | UInt16(pcm[$0 + 1]) << 8) }
        }
        #expect(output.count == input.count)
        // 24 kbit/s over 1 s is about 3 KB; far less than the 32 KB of PCM.
        #expect(packetBytes < 6000)
        // Opus delays the signal by a few ms; find the best lag and compare there.
        var best = 0.0
        for lag in 0..<200 {
            var dot = 0.0, a = 0.0, b = 0.0
            for i in 1000..<(input.count - 200) {
                let x = Double(input[i]), y = Double(output[i + lag])
                dot += x * y; a += x * x; b += y * y
            }
            best = max(best, dot / (a * b).squareRoot())
        }
        #expect(best > 0.9, "correlation \(best)")
    }

    @Test func garbageIsAnErrorNotACrash() throws {
        let decoder = try OpusDecoder(sampleRate: 16000, channels: 1)
        // A TOC byte announcing a code-3 packet with an impossible frame count.
        #expect(throws: OpusError.self) { try decoder.decode([0xFF, 0xFF]) }
        #expect(throws: OpusError.self) { try OpusDecoder(sampleRate: 12345, channels: 1) }
        let concealed = try decoder.conceal()
        #expect(concealed.count == 320 * 2)
    }
}

@Suite struct OpusEncoderOptionsTests {
    @Test func complexityAndDTXAreAcceptedAndDTXShrinksSilence() throws {
        let plain = try OpusEncoder(sampleRate: 16000, channels: 1, bitrate: 24000, complexity: 5)
        let dtx = try OpusEncoder(sampleRate: 16000, channels: 1, bitrate: 24000, complexity: 5, dtx: true)
        #expect(plain.lookahead > 0 && !plain.dtx && dtx.dtx && dtx.bitrate == 24000)
        let silence = [Int16](repeating: 0, count: 320)
        var plainBytes = 0, dtxBytes = 0
        for _ in 0..<50 {
            plainBytes += try plain.encode(silence).count
            dtxBytes += try dtx.encode(silence).count
        }
        #expect(dtxBytes < plainBytes, "dtx \(dtxBytes) bytes, plain \(plainBytes) bytes")
        #expect(throws: OpusError.self) { try OpusEncoder(sampleRate: 16000, channels: 1, complexity: 42) }
    }
}

@Suite struct EarconTests {
    /// Zero crossings per second are twice the frequency.
    static func frequency(_ samples: ArraySlice<Int16>, sampleRate: Int = 16000) -> Double {
        var crossings = 0
        for index in samples.indices.dropFirst() where (samples[index - 1] < 0) != (samples[index] < 0) { crossings += 1 }
        return Double(crossings) / 2 / (Double(samples.count) / Double(sampleRate))
    }

    @Test func anAnswerIsTwoRisingNotesAndAnErrorOneLowNote() {
        let answered = Earcon.answered.samples()
        #expect(answered.count == 16 * 250)
        #expect(abs(Self.frequency(answered[200..<1500]) - 660) < 30)
        #expect(abs(Self.frequency(answered[1960..<3800]) - 880) < 30)
        let failed = Earcon.failed.samples()
        #expect(failed.count == 16 * 260)
        #expect(abs(Self.frequency(failed[200..<4000]) - 330) < 20)
        // Faded in and out: no click at either end.
        #expect(abs(Int(answered.first!)) < 100 && abs(Int(answered.last!)) < 300)
    }
}

@Suite struct WAVFileTests {
    static func header(rate: UInt32, channels: UInt16, dataSize: UInt32) -> [UInt8] {
        func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func le16(_ v: UInt16) -> [UInt8] { (0..<2).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        return Array("RIFF".utf8) + le32(0x7fff_f024) + Array("WAVE".utf8) + Array("fmt ".utf8) + le32(16) + le16(1) + le16(channels)
            + le32(rate) + le32(rate * UInt32(channels) * 2) + le16(channels * 2) + le16(16) + Array("data".utf8) + le32(dataSize)
    }

    @Test func aStreamedWAVWithAPlaceholderLengthIsReadToItsEnd() throws {
        // As `espeak-ng --stdout` writes it: the data size is a placeholder (0x7ffff000).
        let bytes = Self.header(rate: 22050, channels: 1, dataSize: 0x7fff_f000) + [0x01, 0x00, 0xFF, 0xFF, 0x00, 0x80]
        let wav = try #require(WAVFile.parse(bytes))
        #expect(wav.sampleRate == 22050)
        #expect(wav.channels == 1)
        #expect(wav.samples == [1, -1, Int16.min])
    }

    @Test func anythingButSixteenBitPCMIsRefused() {
        #expect(WAVFile.parse(Array("not a wav at all".utf8)) == nil)
        var eightBit = Self.header(rate: 8000, channels: 1, dataSize: 2) + [1, 2]
        eightBit[34] = 8
        #expect(WAVFile.parse(eightBit) == nil)
        #expect(WAVFile.parse([]) == nil)
        // Truncated inside the header: no crash, no file.
        #expect(WAVFile.parse(Array(Self.header(rate: 8000, channels: 1, dataSize: 2).prefix(30))) == nil)
    }
}
