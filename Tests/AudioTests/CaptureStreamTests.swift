import Audio
import Foundation
import Testing

@Suite struct CaptureStreamTests {
    /// Samples 0, 1, 2, ... so a frame tells where in the file it came from.
    static func ramp(count: Int) -> [Int16] { (0..<count).map { Int16(truncatingIfNeeded: $0 % 30000) } }

    @Test func deliversFramesInOrderAndClosesThePCMWhenTheLoopEnds() async throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let samples = Self.ramp(count: 16000)
        let path = try fixture.write(samples, name: "ramp.raw")
        // Room for the whole file: a consumer the machine's load delays must not lose frames here
        // (dropping is the next test's subject).
        let stream = try CaptureStream.start(
            device: "ramp", configuration: AudioFixture.capturePCM("ramp", infile: path), bufferedFrames: 100)
        var received: [Int16] = []
        for try await frame in stream {
            received += frame
            if received.count >= 10 * 320 { break }
        }
        #expect(received == Array(samples.prefix(10 * 320)))
        // Leaving the loop released the iterator: the thread stops and closes the PCM.
        await stream.waitUntilClosed()
        #expect(stream.isClosed)
        #expect(stream.droppedFrames == 0)
    }

    @Test func stopEndsTheSequenceAndClosesThePCM() async throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let path = try fixture.write(Self.ramp(count: 16000), name: "ramp.raw")
        let stream = try CaptureStream.start(device: "stop", configuration: AudioFixture.capturePCM("stop", infile: path))
        var count = 0
        for try await _ in stream {
            count += 1
            if count == 3 { stream.stop() }
        }
        // After stop the sequence ended by itself (with at most the frames already buffered).
        #expect(count >= 3)
        await stream.waitUntilClosed()
        #expect(stream.isClosed)
    }

    @Test func cancellingTheConsumerStopsTheCapture() async throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let path = try fixture.write(Self.ramp(count: 16000), name: "ramp.raw")
        let stream = try CaptureStream.start(device: "cancel", configuration: AudioFixture.capturePCM("cancel", infile: path))
        // The consumer says when it has its first frame: the capture runs, and is then cancelled.
        let (firstFrame, firstFrameSeen) = AsyncStream.makeStream(of: Void.self)
        let consumer = Task {
            defer { firstFrameSeen.finish() }
            var count = 0
            for try await _ in stream {
                count += 1
                firstFrameSeen.yield()
            }
            return count
        }
        for await _ in firstFrame { break }
        consumer.cancel()
        _ = try await consumer.value
        await stream.waitUntilClosed()
        #expect(stream.isClosed)
    }

    @Test func aSlowConsumerLosesTheOldestFramesAndTheyAreCounted() async throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let samples = Self.ramp(count: 32000)
        let path = try fixture.write(samples, name: "ramp.raw")
        // Unpaced: the thread reads far faster than real time, so a buffer of 4 frames overflows.
        let stream = try CaptureStream.start(
            device: "slow", configuration: AudioFixture.capturePCM("slow", infile: path), paced: false, bufferedFrames: 4
        )
        // Until the buffer has overflowed (the count says so), within a bound.
        let deadline = ContinuousClock.now + .seconds(10)
        while stream.droppedFrames == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        var iterator = stream.makeAsyncIterator()
        let first = try #require(try await iterator.next())
        stream.stop()
        #expect(stream.droppedFrames > 0)
        // The frames kept are recent ones, not the file's first frame.
        #expect(first != Array(samples.prefix(320)))
        await stream.waitUntilClosed()
    }

    @Test func aMissingDeviceFailsAtStartNotInTheLoop() {
        #expect {
            _ = try CaptureStream.start(device: "edge-no-such-pcm")
        } throws: { error in
            (error as? AudioError)?.code == .deviceMissing
        }
    }

    @Test func anOpenedCaptureCanBeHandedToAStream() async throws {
        let fixture = try AudioFixture()
        defer { fixture.remove() }
        let samples = Self.ramp(count: 3200)
        let path = try fixture.write(samples, name: "ramp.raw")
        let capture = try ALSACapture.open(device: "handed", configuration: AudioFixture.capturePCM("handed", infile: path))
        let stream = CaptureStream.start(capture: capture, bufferedFrames: 100)
        var iterator = stream.makeAsyncIterator()
        #expect(try await iterator.next() == Array(samples.prefix(320)))
        stream.stop()
        await stream.waitUntilClosed()
    }
}
