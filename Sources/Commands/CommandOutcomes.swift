/// The answer to a cloud command (``CommandQueue/enqueue(_:nowMs:)``); each is answered upstream
/// with the record's status or the rejection.
public enum EnqueueOutcome: Sendable, Equatable {
    /// Stored (committed): answer `queued`.
    case queued(CommandRecord)
    /// This `(device, commandId)` was stored before: not stored again; answer its current status.
    case repeated(CommandRecord)
    /// Refused, not stored: answer `rejected` with ``CommandRejection/message``.
    case rejected(CommandRejection)
}

/// A device result that changed nothing (counted in `gateway.commands.results.ignored.total`).
public struct IgnoredResult: Sendable, Equatable {
    public enum Reason: String, Sendable, CaseIterable {
        /// The payload could not be read.
        case invalid
        /// No such command for this device (never stored, or purged).
        case unknown
        /// The command is finished already; its status never goes back.
        case finished
        /// `accepted` again for a command already `delivered`.
        case repeated
    }

    public var reason: Reason
    /// The command as stored, when there is one.
    public var record: CommandRecord?
    /// Why, for the log (no input text in it).
    public var detail: String
}

/// The answer to a device result (``CommandQueue/result(device:_:nowMs:)``).
public enum ResultOutcome: Sendable, Equatable {
    /// The command reached a new status (committed): send it upstream.
    case changed(CommandRecord)
    case ignored(IgnoredResult)
}

/// Why an operator's cancel was refused (counted in `gateway.commands.cancels.refused.total`).
public struct CancelRefusal: Sendable, Equatable {
    public enum Reason: String, Sendable, CaseIterable {
        case notFound = "not_found"
        /// Sent to the device already: it may be running it, so the hub cannot take it back.
        case alreadySent = "already_sent"
        case alreadyDelivered = "already_delivered"
        case alreadyFinished = "already_finished"
    }

    public var reason: Reason
    public var record: CommandRecord?

    /// Plain words for the operator.
    public var message: String {
        switch reason {
        case .notFound: "no such command"
        case .alreadySent: "already sent to the device"
        case .alreadyDelivered: "already delivered: the device accepted it"
        case .alreadyFinished: "already finished (\(record?.status.rawValue ?? "final"))"
        }
    }
}

/// The answer to an operator's cancel (``CommandQueue/cancel(device:commandID:nowMs:)``).
public enum CancelOutcome: Sendable, Equatable {
    /// Now `rejected` with message `cancelled` (committed): send it upstream.
    case cancelled(CommandRecord)
    case refused(CancelRefusal)
}
