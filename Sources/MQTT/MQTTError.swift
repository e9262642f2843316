/// An error of the MQTT layer: a libmosquitto result code with its text.
public struct MQTTError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: Sendable, Equatable {
        /// Not connected right now; try again after the next connect.
        case notConnected
        /// The payload is larger than MQTT allows, or the topic is invalid.
        case invalidMessage
        /// The client was stopped.
        case stopped
        /// Any other libmosquitto error, with its numeric code.
        case library(Int32)
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether the same call may succeed later (after a reconnect).
    public var isRetriable: Bool {
        switch code {
        case .notConnected, .library: true
        case .invalidMessage, .stopped: false
        }
    }

    public var description: String { message }
}
