import DeviceLink
import GatewayCore
import Logging

/// Answers to devices: each session is answered once; a response the device broker cannot take
/// now is tried again (`dialog.responseAttempts`) by ``Dialog/retryResponses()`` in the dialog's own
/// task group, then counted as lost.
extension Dialog {
    /// Answers the device once; false when the session was answered already (timed out).
    @discardableResult
    func conclude(_ session: DialogSession, with response: DeviceResponse) -> Bool {
        guard session.conclude() else { return false }
        release(session)
        respond(response)
        return true
    }

    /// Ends the session with an `ERROR` (once) and counts it under its code.
    func conclude(_ session: DialogSession, error code: DeviceResponse.ErrorCode, _ message: String) {
        guard conclude(session, with: .error(device: session.device, code: code, message: message, session: session.start.session)) else { return }
        metrics.ended(code.rawValue)
    }

    /// Sends a response; while the device broker is unreachable it is tried again
    /// (`dialog.responseAttempts` in all, 250 ms, 500 ms, … apart), then counted as lost.
    func respond(_ response: DeviceResponse) {
        live?.publish(.response(response))
        attempt(PendingResponse(response: response, attempt: 1))
    }

    struct PendingResponse: Sendable {
        var response: DeviceResponse
        var attempt: Int
    }

    func attempt(_ pending: PendingResponse) {
        do {
            try replies.send(pending.response)
            metrics.responses.increment()
        } catch {
            guard pending.attempt < configuration.responseAttempts else {
                lost(pending.response, error)
                return
            }
            var next = pending
            next.attempt += 1
            if case .enqueued = retries.continuation.yield(next) { return }
            lost(pending.response, error)
        }
    }

    /// Runs the retries of ``respond(_:)``, each after its delay, until ``run()`` ends.
    func retryResponses() async {
        await withDiscardingTaskGroup { group in
            for await pending in retries.stream {
                group.addTask {
                    try? await Task.sleep(for: .milliseconds(250 * (pending.attempt - 1)))
                    self.attempt(pending)
                }
            }
        }
    }

    func lost(_ response: DeviceResponse, _ error: any Error) {
        metrics.responsesLost.increment()
        logger.warning(
            "could not publish a response to the device",
            metadata: ["device.id": "\(response.device)", "response.type": "\(response.kind.rawValue)", "error": "\(error)"])
    }
}
