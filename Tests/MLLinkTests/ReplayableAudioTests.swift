import MLLink
import Testing

@Suite(.timeLimit(.minutes(1))) struct ReplayableAudioTests {
    func readAll(_ reader: ReplayableAudio.Reader) async throws -> [[UInt8]] {
        var chunks: [[UInt8]] = []
        for try await chunk in reader { chunks.append(chunk) }
        return chunks
    }

    @Test func aSecondReaderSeesTheAudioFromTheStartAndFollowsItLive() async throws {
        let audio = ReplayableAudio()
        audio.append([1])
        audio.append([2])
        let first = Task { try await readAll(audio.reader()) }
        let second = Task { try await readAll(audio.reader()) }
        try await Task.sleep(for: .milliseconds(20))
        audio.append([3])
        audio.finish()
        #expect(try await first.value == [[1], [2], [3]])
        #expect(try await second.value == [[1], [2], [3]])
        #expect(audio.canReplay)
    }

    @Test func pastTheLimitReadChunksAreLetGoAndReplayEnds() async throws {
        let audio = ReplayableAudio(replayLimitBytes: 10)
        let reader = Task { try await readAll(audio.reader()) }
        for value in 0..<6 {
            audio.append([UInt8](repeating: UInt8(value), count: 4))
            try await Task.sleep(for: .milliseconds(5))
        }
        audio.finish()
        #expect(try await reader.value.count == 6, "the reader under way still gets everything")
        #expect(!audio.canReplay)
        let late = try await readAll(audio.reader())
        #expect(late.count < 6, "a new reader cannot start from the beginning any more")
    }

    @Test func failingTheAudioEndsWaitingReadersWithTheError() async throws {
        let audio = ReplayableAudio()
        audio.append([1])
        let reader = Task { try await readAll(audio.reader()) }
        try await Task.sleep(for: .milliseconds(20))
        audio.fail(MLError(.unavailable, "session timed out"))
        await #expect(throws: MLError.self) { try await reader.value }
    }

    @Test func cancellingAWaitingReaderEndsIt() async throws {
        let audio = ReplayableAudio()
        let reader = Task { try await readAll(audio.reader()) }
        try await Task.sleep(for: .milliseconds(20))
        reader.cancel()
        await #expect(throws: (any Error).self) { try await reader.value }
    }
}
