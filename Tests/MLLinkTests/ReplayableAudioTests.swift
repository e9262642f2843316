import Testing

@testable import MLLink

/// Waits, within a bound, for `condition` (an observable state, never a guess at timing).
private func until(_ what: String, timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for \(what)")
            return
        }
        try await Task.sleep(for: .milliseconds(1))
    }
}

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
        try await until("both readers to wait for more") { audio.waitingReaders == 2 }
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
            try await until("the reader to take chunk \(value)") { audio.unreadBytes == 0 }
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
        try await until("the reader to wait after the first chunk") { audio.waitingReaders == 1 }
        audio.fail(MLError(.unavailable, "session timed out"))
        await #expect(throws: MLError.self) { try await reader.value }
    }

    @Test func cancellingAWaitingReaderEndsIt() async throws {
        let audio = ReplayableAudio()
        let reader = Task { try await readAll(audio.reader()) }
        try await until("the reader to wait") { audio.waitingReaders == 1 }
        reader.cancel()
        await #expect(throws: (any Error).self) { try await reader.value }
    }
}
