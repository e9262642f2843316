/// How long a call may take.
///
/// `connect` bounds the TCP connect. `call` bounds a request–answer call (`describe`, `recognize`, `handle`,
/// `synthesize`) from the connect to the last byte of the answer; for the streaming calls (`transcribe`,
/// `detect`) it bounds the time from the end of the caller's audio (`audio-stop` sent) to the answer, and the
/// wait for each audio chunk to be taken by the server while the audio streams. A server that drips bytes
/// therefore fails the call at the deadline whatever it sends.
public struct WyomingTimeouts: Sendable, Hashable {
    public var connect: Duration
    public var call: Duration

    public init(connect: Duration = .seconds(2), call: Duration = .seconds(10)) {
        self.connect = connect
        self.call = call
    }
}
