import Audio
import Foundation
import Testing

@Suite struct ALSAPlaybackTests {
    @Test func writesExactlyTheSamplesThroughTheFilePlugin() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let output = fixture.directory.appendingPathComponent("played.raw").path
        var noise = NoiseGenerator(seed: 3)
        // 1 s plus an odd tail, written in uneven chunks: nothing may be lost, reordered or padded.
        let samples = (0..<16123).map { _ in Int16(max(-32768, min(32767, noise.next() * 4000))) }
        let playback = try ALSAPlayback.open(device: "played", configuration: AudioFixture.playbackPCM("played", file: output))
        var offset = 0
        for chunk in [320, 1000, 7, 5000, 4096] {
            try playback.write(Array(samples[offset..<offset + chunk]))
            offset += chunk
        }
        try playback.write(Array(samples[offset...]))
        try playback.drain()
        playback.close()
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(written.count == samples.count * 2)
        #expect(written == AudioFixture.littleEndianBytes(samples))
        #expect(playback.underruns == 0)
    }

    @Test func playbackContinuesAfterDrain() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let output = fixture.directory.appendingPathComponent("twice.raw").path
        let playback = try ALSAPlayback.open(device: "twice", configuration: AudioFixture.playbackPCM("twice", file: output))
        let first = [Int16](repeating: 1000, count: 3200)
        let second = [Int16](repeating: -1000, count: 1600)
        try playback.write(first)
        try playback.drain()
        try playback.write(second)
        try playback.drain()
        playback.close()
        let written = try [UInt8](Data(contentsOf: URL(fileURLWithPath: output)))
        #expect(written == AudioFixture.littleEndianBytes(first + second))
    }

    @Test func writeAfterCloseThrowsClosedAndMissingDeviceIsReported() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let output = fixture.directory.appendingPathComponent("closed.raw").path
        let playback = try ALSAPlayback.open(device: "closed", configuration: AudioFixture.playbackPCM("closed", file: output))
        playback.close()
        playback.close()
        #expect {
            try playback.write([0, 0])
        } throws: { error in
            (error as? AudioError)?.code == .closed
        }
        #expect {
            _ = try ALSAPlayback.open(device: "hw:7,0")
        } throws: { error in
            guard let error = error as? AudioError else { return false }
            return error.code == .deviceMissing && error.description.contains("aplay -L")
        }
    }
}
