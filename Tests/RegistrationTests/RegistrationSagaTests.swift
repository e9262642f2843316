import Foundation
import GatewayCore
import Logging
import Registration
import Synchronization
import Testing

/// The saga's effects, recorded, with failures to order.
final class RecordingEffects: RegistrationEffects {
    struct Failure {
        var kind: StepError.Kind
        /// How many calls fail before one succeeds (Int.max: always).
        var times: Int
    }

    let calls = Mutex<[String]>([])
    let failures = Mutex<[String: Failure]>([:])

    func fail(_ operation: String, _ kind: StepError.Kind = .refused, times: Int = .max) {
        failures.withLock { $0[operation] = Failure(kind: kind, times: times) }
    }

    var recorded: [String] { calls.withLock { $0 } }

    private func call(_ operation: String) throws(StepError) {
        calls.withLock { $0.append(operation) }
        let failure = failures.withLock { failures -> Failure? in
            guard var failure = failures[operation], failure.times > 0 else { return nil }
            failure.times -= 1
            failures[operation] = failure
            return failure
        }
        if let failure { throw StepError(failure.kind, "\(operation) failed (scripted)") }
    }

    func checkQuota(_ request: RegistrationRequest) async throws(StepError) { try call("checkQuota") }
    func recordLocally(_ request: RegistrationRequest) async throws(StepError) { try call("recordLocally") }
    func deleteLocalRecord(_ request: RegistrationRequest) async throws(StepError) { try call("deleteLocalRecord") }
    func createBrokerAccount(_ request: RegistrationRequest, password: String) async throws(StepError) { try call("createBrokerAccount") }
    func deleteBrokerAccount(_ request: RegistrationRequest) async throws(StepError) { try call("deleteBrokerAccount") }
    func registerUpstream(_ request: RegistrationRequest) async throws(StepError) -> String {
        try call("registerUpstream")
        return "reg-\(request.device)"
    }
    func unregisterUpstream(_ request: RegistrationRequest, registryID: String?) async throws(StepError) { try call("unregisterUpstream") }
    func addToUser(_ request: RegistrationRequest) async throws(StepError) { try call("addToUser") }
    func removeFromUser(_ request: RegistrationRequest) async throws(StepError) { try call("removeFromUser") }
    func addBillingCharge(_ request: RegistrationRequest) async throws(StepError) { try call("addBillingCharge") }
    func deleteBillingCharge(_ request: RegistrationRequest) async throws(StepError) { try call("deleteBillingCharge") }
}

@Suite(.timeLimit(.minutes(1))) final class RegistrationSagaTests: Sendable {
    static let forward = ["checkQuota", "recordLocally", "createBrokerAccount", "registerUpstream", "addToUser", "addBillingCharge"]
    static let compensation: [String: String] = [
        "recordLocally": "deleteLocalRecord", "createBrokerAccount": "deleteBrokerAccount", "registerUpstream": "unregisterUpstream",
        "addToUser": "removeFromUser", "addBillingCharge": "deleteBillingCharge",
    ]

    /// This test's directory, removed when the test is over.
    let directory = NSTemporaryDirectory() + "saga-test-\(UUID().uuidString)"
    var path: String { directory + "/registrations.db" }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func request(_ id: String = UUID().uuidString, premium: Bool = true) -> RegistrationRequest {
        RegistrationRequest(requestID: id, device: DeviceID("dev-1")!, userID: "user-1", type: "speaker", premium: premium)
    }

    func saga(_ effects: RecordingEffects, attempts: Int = 3) throws -> RegistrationSaga {
        var configuration = RegistrationSaga.Configuration()
        configuration.compensationAttempts = attempts
        configuration.compensationBackoff = .milliseconds(1)
        return RegistrationSaga(store: try SagaStore(path: path), effects: effects, configuration: configuration, logger: Logger(label: "saga-test"))
    }

    @Test func everyStepRunsInOrderAndTheDeviceGetsItsCredentials() async throws {
        let effects = RecordingEffects()
        let outcome = try await saga(effects).register(request())
        guard case .registered(let password, let registryID) = outcome else { Issue.record("\(outcome)"); return }
        #expect(password?.count == 32)
        #expect(registryID == "reg-dev-1")
        #expect(effects.recorded == Self.forward)
    }

    @Test func aDeviceThatIsNotPremiumIsNotCharged() async throws {
        let effects = RecordingEffects()
        _ = try await saga(effects).register(request(premium: false))
        #expect(effects.recorded == Array(Self.forward.dropLast()))
    }

    @Test(arguments: ["recordLocally", "createBrokerAccount", "registerUpstream", "addToUser", "addBillingCharge"])
    func aRefusedStepCompensatesExactlyTheStepsBeforeItInReverse(failing: String) async throws {
        let effects = RecordingEffects()
        effects.fail(failing, .refused)
        let outcome = try await saga(effects).register(request())
        guard case .failed(let reason) = outcome else { Issue.record("\(outcome)"); return }
        #expect(reason.contains(failing))
        let index = Self.forward.firstIndex(of: failing)!
        let undo = Self.forward[..<index].reversed().compactMap { Self.compensation[$0] }
        #expect(effects.recorded == Array(Self.forward[...index]) + undo)
    }

    @Test func aStepThatTimedOutIsCompensatedTooBecauseItMayHaveHappened() async throws {
        let effects = RecordingEffects()
        effects.fail("registerUpstream", .unavailable)
        _ = try await saga(effects).register(request())
        #expect(effects.recorded == Array(Self.forward[...3]) + ["unregisterUpstream", "deleteBrokerAccount", "deleteLocalRecord"])
    }

    @Test func quotaExceededChangesNothing() async throws {
        let effects = RecordingEffects()
        effects.fail("checkQuota", .refused)
        let outcome = try await saga(effects).register(request())
        #expect(outcome == .failed(reason: "checkQuota: checkQuota failed (scripted)"))
        #expect(effects.recorded == ["checkQuota"])
    }

    @Test func theSameRequestIdTwiceRegistersOnce() async throws {
        let effects = RecordingEffects()
        let saga = try saga(effects)
        let first = await saga.register(request("req-1"))
        let second = await saga.register(request("req-1"))
        #expect(first == second)
        #expect(effects.recorded == Self.forward)
        // Also after a restart (a new store on the same file).
        let third = try await self.saga(effects).register(request("req-1"))
        #expect(third == first)
        #expect(effects.recorded == Self.forward)
    }

    @Test func aCompensationThatFailsIsRetriedUntilItSucceeds() async throws {
        let effects = RecordingEffects()
        effects.fail("addBillingCharge", .refused)
        effects.fail("removeFromUser", .unavailable, times: 2)
        let outcome = try await saga(effects, attempts: 5).register(request())
        guard case .failed = outcome else { Issue.record("\(outcome)"); return }
        #expect(effects.recorded.filter { $0 == "removeFromUser" }.count == 3)
        #expect(effects.recorded.suffix(4) == ["removeFromUser", "unregisterUpstream", "deleteBrokerAccount", "deleteLocalRecord"])
    }

    @Test func aCompensationThatKeepsFailingLeavesTheSagaNeedingAttention() async throws {
        let effects = RecordingEffects()
        effects.fail("addToUser", .refused)
        effects.fail("unregisterUpstream", .unavailable)
        let saga = try saga(effects, attempts: 3)
        let outcome = await saga.register(request("req-stuck"))
        guard case .needsAttention = outcome else { Issue.record("\(outcome)"); return }
        #expect(effects.recorded.filter { $0 == "unregisterUpstream" }.count == 3)
        // The other compensations still ran.
        #expect(effects.recorded.suffix(2) == ["deleteBrokerAccount", "deleteLocalRecord"])
        #expect(await saga.needingAttention == ["req-stuck"])
    }

    @Test func aSagaCutShortBetweenStepsIsResumedForwardAfterARestart() async throws {
        // What a crash leaves: three steps done, the fourth begun.
        let store = try SagaStore(path: path)
        let cut = request("req-crash")
        _ = try await store.begin(cut, password: "pw-from-before-the-crash-0123456")
        for step in [RegistrationStep.checkQuota, .recordLocally, .createBrokerAccount] {
            try await store.log(cut.requestID, step, .begin)
            try await store.log(cut.requestID, step, .done)
        }
        try await store.log(cut.requestID, .registerUpstream, .begin)

        let effects = RecordingEffects()
        let outcomes = try await saga(effects).resumeUnfinished()
        #expect(outcomes["req-crash"] == .registered(password: "pw-from-before-the-crash-0123456", registryID: "reg-dev-1"))
        #expect(effects.recorded == ["registerUpstream", "addToUser", "addBillingCharge"], "the step in doubt runs again (it is idempotent)")
        #expect(try await saga(effects).resumeUnfinished().isEmpty)
    }

    @Test func aSagaCutShortWhileCompensatingFinishesItsCompensations() async throws {
        let store = try SagaStore(path: path)
        let cut = request("req-undo")
        _ = try await store.begin(cut, password: "pw")
        for step in [RegistrationStep.checkQuota, .recordLocally, .createBrokerAccount] {
            try await store.log(cut.requestID, step, .begin)
            try await store.log(cut.requestID, step, .done)
        }
        try await store.log(cut.requestID, .registerUpstream, .begin)
        try await store.log(cut.requestID, .registerUpstream, .failed, detail: "refused")
        try await store.setState(cut.requestID, .compensating, reason: "registerUpstream: refused")
        try await store.log(cut.requestID, .createBrokerAccount, .compensating)
        try await store.log(cut.requestID, .createBrokerAccount, .compensated)
        try await store.log(cut.requestID, .recordLocally, .compensating)

        let effects = RecordingEffects()
        let outcomes = try await saga(effects).resumeUnfinished()
        #expect(outcomes["req-undo"] == .failed(reason: "registerUpstream: refused"))
        #expect(effects.recorded == ["deleteLocalRecord"])
    }

    @Test(arguments: [
        RegistrationRequest(requestID: "req-c", device: DeviceID("dev-2")!, userID: "user-1", type: "speaker", premium: true),
        RegistrationRequest(requestID: "req-c", device: DeviceID("dev-1")!, userID: "user-2", type: "speaker", premium: true),
        RegistrationRequest(requestID: "req-c", device: DeviceID("dev-1")!, userID: "user-1", type: "camera", premium: true),
        RegistrationRequest(requestID: "req-c", device: DeviceID("dev-1")!, userID: "user-1", type: "speaker", premium: false),
    ])
    func aRequestIdReusedForAnotherRegistrationIsRejectedWithoutTheCredentials(reuse: RegistrationRequest) async throws {
        let effects = RecordingEffects()
        let saga = try saga(effects)
        guard case .registered(let password?, _) = await saga.register(request("req-c")) else { Issue.record("not registered"); return }
        let outcome = await saga.register(reuse)
        #expect(outcome == .rejected(reason: "requestId reused"))
        #expect("\(outcome)".contains(password) == false)
        #expect(effects.recorded == Self.forward, "nothing ran for the reuse")
        #expect(await saga.record("req-c")?.request.device == DeviceID("dev-1"), "the record is unchanged")
    }

    @Test func thePasswordIsWipedAfterItsRetentionAndARepeatIsAnsweredWithoutIt() async throws {
        let effects = RecordingEffects()
        let saga = try saga(effects)
        let first = await saga.register(request("req-kept"))
        guard case .registered(let password?, let registryID) = first else { Issue.record("\(first)"); return }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // Within the retention: kept.
        #expect(await saga.maintain(nowMs: now + 5_000, passwordRetention: .seconds(10), recordRetention: .seconds(100)) == (0, 0))
        #expect(await saga.register(request("req-kept")) == .registered(password: password, registryID: registryID))
        // After it: wiped from the record (also on disk: a new store on the same file).
        #expect(await saga.maintain(nowMs: now + 11_000, passwordRetention: .seconds(10), recordRetention: .seconds(100)) == (1, 0))
        #expect(try await SagaStore(path: path).record("req-kept")?.password == nil)
        #expect(await saga.register(request("req-kept")) == .registered(password: nil, registryID: registryID))
        #expect(effects.recorded == Self.forward)
    }

    @Test func finishedRecordsArePrunedAfterTheirRetentionButNeedsAttentionStays() async throws {
        let effects = RecordingEffects()
        effects.fail("addToUser", .refused)
        effects.fail("unregisterUpstream", .unavailable)
        let saga = try saga(effects, attempts: 1)
        _ = await saga.register(request("req-attention"))
        effects.failures.withLock { $0 = [:] }
        _ = await saga.register(request("req-done"))
        effects.fail("checkQuota", .refused)
        _ = await saga.register(request("req-failed"))
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        #expect(await saga.maintain(nowMs: now + 50_000, passwordRetention: .seconds(10), recordRetention: .seconds(100)).pruned == 0)
        #expect(await saga.record("req-done") != nil)
        #expect(await saga.maintain(nowMs: now + 101_000, passwordRetention: .seconds(10), recordRetention: .seconds(100)).pruned == 2)
        #expect(await saga.record("req-done") == nil)
        #expect(await saga.record("req-failed") == nil)
        #expect(await saga.record("req-attention")?.state == .needsAttention)
        #expect(await saga.record("req-attention")?.password == nil, "its password is wiped all the same")
        #expect(await saga.needingAttention == ["req-attention"])
    }
}
