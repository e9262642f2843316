import Audio
import Foundation
import Testing

@Suite struct ALSACaptureTests {
    @Test func readsTheInfileSampleExactThroughTheFilePlugin() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let signal = SpeechSignal(pattern: [0.3, 0.5, 0.2])
        let path = try fixture.write(signal.samples, name: "speech.raw")
        let capture = try ALSACapture.open(
            device: "edgetest", configuration: AudioFixture.capturePCM("edgetest", infile: path), paced: false
        )
        defer { capture.close() }
        #expect(capture.sampleRate == 16000 && capture.channels == 1 && capture.periodFrames == 320)
        var read: [Int16] = []
        for _ in 0..<(signal.samples.count / AudioFixture.frame) {
            let frame = try capture.read()
            #expect(frame.count == AudioFixture.frame)
            read += frame
        }
        #expect(read == Array(signal.samples.prefix(read.count)))
        #expect(capture.overruns == 0)
    }

    @Test func pacedReadingDoesNotRunAheadOfTheClock() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let path = try fixture.write([Int16](repeating: 100, count: 16000), name: "tone.raw")
        let capture = try ALSACapture.open(device: "paced", configuration: AudioFixture.capturePCM("paced", infile: path))
        defer { capture.close() }
        let periods = 25  // 500 ms of audio
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<periods { _ = try capture.read() }
        let elapsed = clock.now - start
        // The file plugin over null is not clocked; only pacing can make this take real time.
        // A lower bound only: slow machines may take longer.
        #expect(elapsed >= .milliseconds(periods * 20 * 8 / 10), "took \(elapsed)")
    }

    @Test func unpacedReadingOfAnUnclockedPCMIsFast() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let path = try fixture.write([Int16](repeating: 100, count: 16000), name: "tone.raw")
        let capture = try ALSACapture.open(
            device: "fast", configuration: AudioFixture.capturePCM("fast", infile: path), paced: false
        )
        // 1 s of audio; without pacing nothing waits for the clock (the bound is loose on purpose).
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<50 { _ = try capture.read() }
        #expect(clock.now - start < .milliseconds(900))
    }

    @Test(arguments: ["edge-no-such-pcm", "hw:7,0", "plughw:7,0"])
    func missingDeviceIsDeviceMissingWithAnActionableMessage(device: String) {
        #expect {
            _ = try ALSACapture.open(device: device)
        } throws: { error in
            guard let error = error as? AudioError else { return false }
            return error.code == .deviceMissing && !error.isRetriable && error.device == device
                && error.description.contains("'\(device)' not found") && error.description.contains("arecord -L")
        }
    }

    @Test func aConfigurationThatDoesNotParseIsAConfigurationError() {
        #expect {
            _ = try ALSACapture.open(device: "broken", configuration: "pcm.broken { type file; slave.pcm \"null\" ")
        } throws: { error in
            (error as? AudioError)?.code == .configuration
        }
    }

    @Test func closeIsIdempotentAndReadAfterCloseThrowsClosed() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let path = try fixture.write([Int16](repeating: 0, count: 3200), name: "zero.raw")
        let capture = try ALSACapture.open(device: "c", configuration: AudioFixture.capturePCM("c", infile: path), paced: false)
        _ = try capture.read()
        capture.close()
        capture.close()
        #expect {
            _ = try capture.read()
        } throws: { error in
            (error as? AudioError)?.code == .closed
        }
    }

    @Test func theSameConfigurationCanBeOpenedAgainAfterClose() throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let path = try fixture.write([Int16](repeating: 7, count: 3200), name: "seven.raw")
        let text = AudioFixture.capturePCM("again", infile: path)
        for _ in 0..<3 {
            let capture = try ALSACapture.open(device: "again", configuration: text, paced: false)
            #expect(try capture.read() == [Int16](repeating: 7, count: 320))
        }
    }
}
