import Foundation
import Testing

@testable import GatewayCore

@Suite struct AudioMessageTests {
    let session = UUID(uuidString: "6f9619ff-8b86-d011-b42d-00cf4fc964ff")!

    @Test func startFrameAndEndRoundTrip() throws {
        let messages: [AudioMessage] = [
            .start(.init(session: session, codec: .opus, sampleRate: 16000, channels: 1, language: "en-US", userID: "u-7")),
            .start(.init(session: session, codec: .pcm, sampleRate: 48000, channels: 2, language: "de")),
            .frame(session: session, sequence: 0x0102_0304, payload: [9, 8, 7]),
            .frame(session: session, sequence: 0, payload: []),
            .end(session: session, lastSequence: 41),
        ]
        for message in messages {
            #expect(try AudioMessage.parse(message.bytes).get() == message)
        }
    }

    @Test func frameLayoutIsTheContracts() throws {
        let bytes: [UInt8] = [0x02] + withUnsafeBytes(of: session.uuid) { Array($0) } + [0, 0, 1, 0] + [0xAA, 0xBB]
        #expect(try AudioMessage.parse(bytes).get() == .frame(session: session, sequence: 256, payload: [0xAA, 0xBB]))
    }

    @Test func startAsADeviceWritesIt() throws {
        let json = #"{"session": "6F9619FF-8B86-D011-B42D-00CF4FC964FF", "codec": "opus", "sampleRate": 16000, "channels": 1, "language": "en-US"}"#
        let parsed = try AudioMessage.parse([0x01] + Array(json.utf8)).get()
        #expect(parsed == .start(.init(session: session, codec: .opus, sampleRate: 16000, channels: 1, language: "en-US")))
    }

    @Test(arguments: [
        ([], "empty"),
        ([0x07, 1, 2], "unknown kind"),
        ([0x02] + Array(repeating: 0, count: 19), "short frame"),
        ([0x01] + Array(#"{"session": "nope", "codec": "opus", "sampleRate": 16000, "channels": 1, "language": "en"}"#.utf8), "bad session"),
        ([0x01] + Array(#"{"session": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "codec": "mp3", "sampleRate": 16000, "channels": 1, "language": "en"}"#.utf8), "codec"),
        ([0x01] + Array(#"{"session": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "codec": "opus", "sampleRate": 16001, "channels": 1, "language": "en"}"#.utf8), "rate"),
        ([0x01] + Array(#"{"session": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "codec": "opus", "sampleRate": 16000, "channels": 3, "language": "en"}"#.utf8), "channels"),
        ([0x01] + Array(#"{"session": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "codec": "opus", "sampleRate": 16000, "channels": 1, "language": "e n"}"#.utf8), "language"),
        ([0x01] + Array(#"{"session": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "codec": "opus", "sampleRate": 16000, "channels": 1, "language": "en", "userId": 5}"#.utf8), "userId"),
        ([0x01] + Array("{not json".utf8), "json"),
        ([0x03] + Array(#"{"session": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "lastSeq": -1}"#.utf8), "lastSeq"),
        ([0x03] + Array(#"{"session": "6f9619ff-8b86-d011-b42d-00cf4fc964ff", "lastSeq": 4294967296}"#.utf8), "lastSeq too big"),
    ] as [([UInt8], String)])
    func malformedMessagesAreRefused(bytes: [UInt8], what: String) {
        guard case .failure = AudioMessage.parse(bytes) else {
            Issue.record("accepted: \(what)")
            return
        }
    }
}

@Suite struct FrameReorderBufferTests {
    @Test func inOrderFramesPassStraightThrough() {
        var buffer = FrameReorderBuffer<Int>(window: 4)
        for sequence in 0..<5 {
            #expect(buffer.accept(sequence: UInt32(sequence), sequence) == [sequence])
        }
        #expect(buffer.gaps == 0 && buffer.late == 0)
    }

    @Test func framesOutOfOrderWithinTheWindowAreReordered() {
        var buffer = FrameReorderBuffer<Int>(window: 4)
        #expect(buffer.accept(sequence: 0, 0) == [0])
        #expect(buffer.accept(sequence: 2, 2) == [])
        #expect(buffer.accept(sequence: 3, 3) == [])
        #expect(buffer.accept(sequence: 1, 1) == [1, 2, 3])
        #expect(buffer.gaps == 0)
    }

    @Test func aFrameTooFarAheadSkipsTheMissingOnes() {
        var buffer = FrameReorderBuffer<Int>(window: 4)
        #expect(buffer.accept(sequence: 0, 0) == [0])
        #expect(buffer.accept(sequence: 2, 2) == [])
        // 7 is beyond 1 + 4: frame 1 (and 3) are given up; 2 goes out, 4...6 are still awaited.
        #expect(buffer.accept(sequence: 7, 7) == [2])
        #expect(buffer.gaps == 2)
        #expect(buffer.accept(sequence: 1, 1) == [], "too late now")
        #expect(buffer.late == 1)
        #expect(buffer.accept(sequence: 4, 4) == [4])
        #expect(buffer.finish(lastSequence: 8) == [7])
        #expect(buffer.gaps == 2 + 2 + 1, "5 and 6 never came, nor 8")
    }

    /// The attack of issue 12: one frame numbered near the top of the range used to make the
    /// buffer count the gap one number at a time (minutes of a core). The time limit only
    /// guards against that hang; the counts are what is checked.
    @Test(.timeLimit(.minutes(1))) func aSequenceNumberAtTheTopOfTheRangeCostsNoMoreThanTheNextOne() {
        var buffer = FrameReorderBuffer<Int>(window: 4)
        #expect(buffer.accept(sequence: 0, 0) == [0])
        #expect(buffer.accept(sequence: 2, 2) == [])
        #expect(buffer.accept(sequence: 0xFFFF_FFF0, 99) == [2])
        #expect(buffer.next == 0xFFFF_FFF0 - 3)
        #expect(buffer.gaps == 0xFFFF_FFF0 - 3 - 2, "everything from 1 up to the window before the frame, but 2")
        #expect(buffer.heldCount == 1)
        #expect(buffer.accept(sequence: UInt32.max, 100) == [99])
        #expect(buffer.finish(lastSequence: UInt32.max) == [100])
        #expect(buffer.next == Int64(UInt32.max) + 1)
    }

    @Test(.timeLimit(.minutes(1))) func anEndAtTheTopOfTheRangeCostsNoMoreThanAnyOther() {
        var buffer = FrameReorderBuffer<Int>(window: 8)
        #expect(buffer.accept(sequence: 0, 0) == [0])
        #expect(buffer.accept(sequence: 3, 3) == [])
        #expect(buffer.finish(lastSequence: UInt32.max) == [3])
        #expect(buffer.gaps == Int(UInt32.max) - 1, "all but frames 0 and 3")
    }

    @Test func repeatsAreDroppedAndCounted() {
        var buffer = FrameReorderBuffer<Int>(window: 4)
        _ = buffer.accept(sequence: 0, 0)
        _ = buffer.accept(sequence: 2, 2)
        #expect(buffer.accept(sequence: 2, 2) == [])
        #expect(buffer.accept(sequence: 0, 0) == [])
        #expect(buffer.late == 2)
        #expect(buffer.heldCount == 1)
    }
}
