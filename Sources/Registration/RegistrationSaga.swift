import DeviceLink
import Foundation
import GatewayCore
import Logging
import SQLite

/// How a registration ended, as the device is told (`REGISTRATION_RESULT`).
public enum RegistrationOutcome: Sendable, Equatable {
    /// Registered: the device's broker credentials (username = device id); the password is nil
    /// when a repeated request comes after it was wiped (`registration.passwordRetentionSeconds`).
    case registered(password: String?, registryID: String?)
    /// Refused before anything was done (the reason says why, e.g. `requestId reused`).
    case rejected(reason: String)
    /// Not registered; every completed step was compensated.
    case failed(reason: String)
    /// Not registered, and a compensation kept failing: the saga waits in `needs-attention`.
    case needsAttention(reason: String)
    /// The same request id is still being worked on.
    case inProgress
}

/// The durable registration saga (ARCHITECTURE.md "Registration"): the steps of
/// ``RegistrationStep`` in order, each recorded in the ``SagaStore`` before it runs and after it
/// finishes; when one fails, the completed steps are compensated in reverse order (each also
/// recorded), a failing compensation retried with backoff and, past its attempts, left in
/// `needs-attention`. A saga cut short (crash) is resumed by ``resumeUnfinished()``: forward from
/// the step in doubt while it can still complete, else compensated. The same request id twice
/// registers once; a request id already used for another device, user, type or premium flag is
/// rejected (`requestId reused`) and the record's credentials are not given out.
public final class RegistrationSaga: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Attempts per compensation before `needs-attention`.
        public var compensationAttempts = 5
        /// First retry delay of a compensation; doubled each attempt.
        public var compensationBackoff: Duration = .milliseconds(500)

        public init() {}
    }

    private let store: SagaStore
    private let effects: any RegistrationEffects
    private let configuration: Configuration
    private let logger: Logger

    public init(store: SagaStore, effects: any RegistrationEffects, configuration: Configuration = .init(), logger: Logger) {
        self.store = store
        self.effects = effects
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs a registration, or answers a repeated request id from its record.
    public func register(_ request: RegistrationRequest) async -> RegistrationOutcome {
        let existing: SagaStore.Record?
        do {
            existing = try await store.begin(request, password: BrokerAccounts.generatePassword())
        } catch {
            return .failed(reason: "the registration could not be recorded: \(error)")
        }
        if let existing {
            guard existing.request == request else {
                logger.warning(
                    "registration request reuses the request id of another registration",
                    metadata: ["request.id": "\(request.requestID)", "device.id": "\(request.device)", "saga.device_id": "\(existing.request.device)"])
                return .rejected(reason: Self.requestIDReused)
            }
            logger.info("repeated registration request", metadata: ["request.id": "\(request.requestID)", "saga.state": "\(existing.state.rawValue)"])
            return Self.outcome(of: existing)
        }
        return await drive(request.requestID)
    }

    /// The reason of a request whose id was used for a different registration (CONTRACTS.md §1).
    public static let requestIDReused = "requestId reused"

    /// Wipes the passwords of sagas that finished more than `passwordRetention` before `nowMs`
    /// and deletes finished records older than `recordRetention` (never those in
    /// `needs-attention`). Returns how many passwords were wiped and records deleted.
    @discardableResult
    public func maintain(nowMs: Int64, passwordRetention: Duration, recordRetention: Duration) async -> (wiped: Int, pruned: Int) {
        func milliseconds(_ duration: Duration) -> Int64 {
            duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        }
        do {
            let wiped = try await store.wipePasswords(finishedBefore: nowMs - milliseconds(passwordRetention))
            let pruned = try await store.prune(finishedBefore: nowMs - milliseconds(recordRetention))
            if wiped > 0 || pruned > 0 {
                logger.info("registration records maintained", metadata: ["passwords.wiped": "\(wiped)", "records.pruned": "\(pruned)"])
            }
            return (wiped, pruned)
        } catch {
            logger.error("cannot maintain the registration records", metadata: ["error": "\(error)"])
            return (0, 0)
        }
    }

    /// Resumes every saga a crash cut short; returns their outcomes.
    @discardableResult
    public func resumeUnfinished() async -> [String: RegistrationOutcome] {
        let ids = (try? await store.unfinished()) ?? []
        var outcomes: [String: RegistrationOutcome] = [:]
        for id in ids {
            logger.notice("resuming an unfinished registration", metadata: ["request.id": "\(id)"])
            outcomes[id] = await drive(id)
        }
        return outcomes
    }

    /// The recorded saga of `requestID`.
    public func record(_ requestID: String) async -> SagaStore.Record? { try? await store.record(requestID) }

    /// Request ids waiting for an operator.
    public var needingAttention: [String] {
        get async { (try? await store.needingAttention()) ?? [] }
    }

    static func outcome(of record: SagaStore.Record) -> RegistrationOutcome {
        switch record.state {
        case .completed: .registered(password: record.password, registryID: record.registryID)
        case .failed: .failed(reason: record.reason ?? "failed")
        case .needsAttention: .needsAttention(reason: record.reason ?? "a compensation failed")
        case .running, .compensating: .inProgress
        }
    }

    /// The steps a request needs (billing only for premium devices).
    static func steps(for request: RegistrationRequest) -> [RegistrationStep] {
        RegistrationStep.allCases.filter { $0 != .addBillingCharge || request.premium }
    }

    /// Runs the saga of `requestID` from where its record stands.
    private func drive(_ requestID: String) async -> RegistrationOutcome {
        guard var record = try? await store.record(requestID) else { return .failed(reason: "no record of request \(requestID)") }
        if record.state == .running {
            for step in Self.steps(for: record.request) where !record.done.contains(step) {
                do {
                    try await store.log(requestID, step, .begin)
                    let registryID = try await perform(step, record)
                    if let registryID {
                        try await store.setRegistryID(requestID, registryID)
                        record.registryID = registryID
                    }
                    try await store.log(requestID, step, .done)
                    record.done.append(step)
                } catch let error as StepError {
                    // A step that failed for want of an answer may have happened: it stays "begun"
                    // in the log (in doubt) and is compensated too. A refused one did not happen.
                    if error.kind == .unavailable, step.isCompensable {
                        record.inDoubt = step
                    } else {
                        try? await store.log(requestID, step, .failed, detail: error.message)
                        record.inDoubt = nil
                    }
                    let reason = "\(step.rawValue): \(error.message)"
                    logger.warning(
                        "registration step failed; compensating",
                        metadata: ["request.id": "\(requestID)", "device.id": "\(record.request.device)", "saga.step": "\(step.rawValue)", "error": "\(error.message)"])
                    try? await store.setState(requestID, .compensating, reason: reason)
                    record.state = .compensating
                    record.reason = reason
                    break
                } catch {
                    // The store itself failed: stop here; the record says where to resume.
                    logger.error("cannot record a registration step", metadata: ["request.id": "\(requestID)", "error": "\(error)"])
                    return .inProgress
                }
            }
            if record.state == .running {
                try? await store.setState(requestID, .completed)
                logger.info("device registered", metadata: ["request.id": "\(requestID)", "device.id": "\(record.request.device)"])
                return .registered(password: record.password, registryID: record.registryID)
            }
        }
        return await compensate(record)
    }

    /// Compensates the completed (and in-doubt) steps in reverse order.
    private func compensate(_ record: SagaStore.Record) async -> RegistrationOutcome {
        let requestID = record.request.requestID
        var toUndo = record.done.filter(\.isCompensable)
        if let doubt = record.inDoubt, doubt.isCompensable, !toUndo.contains(doubt), !record.compensated.contains(doubt) { toUndo.append(doubt) }
        var gaveUp: [RegistrationStep] = []
        for step in toUndo.sorted(by: >) {
            try? await store.log(requestID, step, .compensating)
            var attempt = 0
            while true {
                attempt += 1
                do {
                    try await undo(step, record)
                    try? await store.log(requestID, step, .compensated)
                    break
                } catch {
                    guard attempt < configuration.compensationAttempts else {
                        try? await store.log(requestID, step, .compensationFailed, detail: error.message)
                        logger.error(
                            "registration compensation failed; needs attention",
                            metadata: ["request.id": "\(requestID)", "device.id": "\(record.request.device)", "saga.step": "\(step.rawValue)", "error": "\(error.message)"])
                        gaveUp.append(step)
                        break
                    }
                    let delay = configuration.compensationBackoff * (1 << min(attempt - 1, 10))
                    logger.warning(
                        "registration compensation failed; retrying",
                        metadata: ["request.id": "\(requestID)", "saga.step": "\(step.rawValue)", "attempt": "\(attempt)", "error": "\(error.message)"])
                    try? await Task.sleep(for: delay)
                }
            }
        }
        let reason = record.reason ?? "registration failed"
        if gaveUp.isEmpty {
            try? await store.setState(requestID, .failed)
            return .failed(reason: reason)
        }
        try? await store.setState(requestID, .needsAttention, reason: reason + "; compensation failed: " + gaveUp.map(\.rawValue).joined(separator: ", "))
        return .needsAttention(reason: reason)
    }

    private func perform(_ step: RegistrationStep, _ record: SagaStore.Record) async throws(StepError) -> String? {
        let request = record.request
        switch step {
        case .checkQuota: try await effects.checkQuota(request)
        case .recordLocally: try await effects.recordLocally(request)
        case .createBrokerAccount:
            guard let password = record.password else { throw StepError(.refused, "the password of this registration is no longer kept") }
            try await effects.createBrokerAccount(request, password: password)
        case .registerUpstream: return try await effects.registerUpstream(request)
        case .addToUser: try await effects.addToUser(request)
        case .addBillingCharge: try await effects.addBillingCharge(request)
        }
        return nil
    }

    private func undo(_ step: RegistrationStep, _ record: SagaStore.Record) async throws(StepError) {
        let request = record.request
        switch step {
        case .checkQuota: return
        case .recordLocally: try await effects.deleteLocalRecord(request)
        case .createBrokerAccount: try await effects.deleteBrokerAccount(request)
        case .registerUpstream: try await effects.unregisterUpstream(request, registryID: record.registryID)
        case .addToUser: try await effects.removeFromUser(request)
        case .addBillingCharge: try await effects.deleteBillingCharge(request)
        }
    }
}
