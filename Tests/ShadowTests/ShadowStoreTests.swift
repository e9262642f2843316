import Foundation
import GatewayCore
import MetricsTestKit
import SQLite
import Shadow
import Testing

/// The store on a real SQLite file in a temporary directory (removed after each test), with
/// injected times and a test metrics factory.
@Suite final class ShadowStoreTests: Sendable {
    let directory = NSTemporaryDirectory() + "shadow-store-\(UUID().uuidString)"
    var path: String { directory + "/shadows.db" }
    let metrics = TestMetrics()
    let lamp = DeviceID("lamp-1")!
    let plug = DeviceID("plug_2")!

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func open(_ configuration: ShadowConfiguration = ShadowConfiguration()) throws -> ShadowStore {
        try ShadowStore(path: path, configuration: configuration, logger: quietLogger, metricsFactory: metrics)
    }

    func update(_ text: String, version: Int64? = nil, token: String? = nil) throws -> ShadowUpdate {
        ShadowUpdate(desired: try object(text), version: version, clientToken: token)
    }

    func report(_ text: String) throws -> ShadowReport {
        ShadowReport(reported: try object(text))
    }

    func counter(_ label: String, _ dimensions: [(String, String)]) -> Int64 {
        metrics.counterTotal(label: label, dimensions: dimensions)
    }

    static func applied(_ outcome: ShadowOutcome) throws -> (ShadowDocument, JSONObject) {
        guard case .applied(let document, let delta) = outcome else { throw TestFailure("not applied: \(outcome)") }
        return (document, delta)
    }

    @Test func anUnknownDeviceHasTheEmptyDocument() async throws {
        let store = try open()
        let document = store.document(lamp)
        #expect(text(document.encoded()) == #"{"desired":{},"reported":{},"version":0,"updatedAt":0}"#)
        #expect(store.delta(lamp).isEmpty)
        #expect(store.count == 0)
        await store.close()
    }

    @Test func everyChangeAddsOneToTheVersionAndTheDeltaFollows() async throws {
        let store = try open()
        let (first, delta1) = try Self.applied(try await store.updateDesired(lamp, update(#"{"led": "on", "level": 3}"#), nowMs: 1000))
        #expect(first.version == 1 && first.updatedAt == 1000 && first.desiredVersion == 1)
        #expect(text(JSONValue.object(delta1).encoded()) == #"{"led":"on","level":3}"#)
        #expect(text(first.encodedDelta()) == #"{"delta":{"led":"on","level":3},"version":1}"#)

        let (second, delta2) = try Self.applied(try await store.report(lamp, report(#"{"led": "on", "temp": 21.5}"#), nowMs: 2000))
        #expect(second.version == 2 && second.updatedAt == 2000 && second.desiredVersion == 1)
        #expect(text(JSONValue.object(delta2).encoded()) == #"{"level":3}"#)
        #expect(
            text(second.encoded()) == #"{"desired":{"led":"on","level":3},"reported":{"led":"on","temp":21.5},"version":2,"updatedAt":2000}"#)
        #expect(store.document(lamp) == second)
        #expect(counter("gateway.shadow.updates.total", [("outcome", "applied")]) == 1)
        #expect(counter("gateway.shadow.reports.total", [("outcome", "applied")]) == 1)
        #expect(try metrics.expectGauge("gateway.shadow.documents").lastValue == 1)
        await store.close()
    }

    @Test func mergePatchNullRemovesAKey() async throws {
        let store = try open()
        _ = try await store.updateDesired(lamp, update(#"{"led": "on", "color": {"r": 1, "g": 2}}"#), nowMs: 1)
        let (document, _) = try Self.applied(try await store.updateDesired(lamp, update(#"{"led": null, "color": {"g": null}}"#), nowMs: 2))
        #expect(text(JSONValue.object(document.desired).encoded()) == #"{"color":{"r":1}}"#)
        #expect(document.version == 2)
        await store.close()
    }

    @Test func aWrongExpectedVersionIsAConflictAndChangesNothing() async throws {
        let store = try open()
        _ = try await store.updateDesired(lamp, update(#"{"led": "on"}"#), nowMs: 1)
        _ = try await store.report(lamp, report(#"{"led": "off"}"#), nowMs: 2)
        let before = store.document(lamp)
        let outcome = try await store.updateDesired(lamp, update(#"{"led": "blink"}"#, version: 1, token: "t-9"), nowMs: 3)
        guard case .conflict(let refusal) = outcome else { throw TestFailure("not a conflict: \(outcome)") }
        #expect(refusal.code == .versionConflict && refusal.version == 2 && refusal.clientToken == "t-9")
        #expect(text(refusal.encoded()).hasPrefix(#"{"clientToken":"t-9","code":"version_conflict","version":2,"#))
        #expect(store.document(lamp) == before)
        // Even a patch that would change nothing is a conflict when the version is wrong.
        guard case .conflict = try await store.updateDesired(lamp, update(#"{}"#, version: 5), nowMs: 4) else { throw TestFailure("no conflict") }
        // The right version applies.
        let (document, _) = try Self.applied(try await store.updateDesired(lamp, update(#"{"led": "blink"}"#, version: 2), nowMs: 5))
        #expect(document.version == 3)
        // An unknown device is at version 0.
        guard case .applied = try await store.updateDesired(plug, update(#"{"on": true}"#, version: 0), nowMs: 6) else { throw TestFailure("version 0") }
        #expect(counter("gateway.shadow.updates.total", [("outcome", "conflict")]) == 2)
        #expect(counter("gateway.shadow.rejected.total", [("message", "update"), ("reason", "version_conflict")]) == 2)
        await store.close()
    }

    @Test func aPatchThatChangesNothingIsUnchangedAndKeepsTheVersion() async throws {
        let store = try open()
        _ = try await store.updateDesired(lamp, update(#"{"led": "on", "level": 1}"#), nowMs: 1)
        for patch in [#"{}"#, #"{"led": "on"}"#, #"{"level": 1.0}"#, #"{"absent": null}"#] {
            let outcome = try await store.updateDesired(lamp, update(patch), nowMs: 9)
            guard case .unchanged(let document) = outcome else { throw TestFailure("\(patch): \(outcome)") }
            #expect(document.version == 1 && document.updatedAt == 1, "\(patch)")
        }
        #expect(text(JSONValue.object(store.document(lamp).desired).encoded()) == #"{"led":"on","level":1}"#)
        // A no-op for a device without a document creates none.
        guard case .unchanged = try await store.report(plug, report(#"{"x": null}"#), nowMs: 9) else { throw TestFailure("plug") }
        #expect(store.count == 1)
        #expect(counter("gateway.shadow.updates.total", [("outcome", "unchanged")]) == 4)
        await store.close()
    }

    @Test func aChangeOverMaxBytesIsRefusedAndTheOldDocumentKeptAlsoAfterReopening() async throws {
        var configuration = ShadowConfiguration()
        configuration.maxBytes = 100
        let store = try open(configuration)
        _ = try await store.updateDesired(lamp, update(#"{"led": "on"}"#), nowMs: 1)
        let before = store.document(lamp)
        let big = #"{"blob": ""# + String(repeating: "x", count: 60) + #""}"#
        let outcome = try await store.updateDesired(lamp, update(big, token: "b1"), nowMs: 2)
        guard case .rejected(let refusal) = outcome else { throw TestFailure("not rejected: \(outcome)") }
        #expect(refusal.code == .tooLarge && refusal.version == 1 && refusal.clientToken == "b1")
        #expect(refusal.reason.contains("more than shadow.maxBytes (100)"), "\(refusal.reason)")
        #expect(store.document(lamp) == before)
        guard case .rejected = try await store.report(lamp, report(big), nowMs: 3) else { throw TestFailure("report not rejected") }
        // Exactly at the limit is allowed.
        let fits = 100 - before.encoded().count - #","x":"""#.utf8.count
        let (document, _) = try Self.applied(
            try await store.updateDesired(lamp, update(#"{"x": ""# + String(repeating: "y", count: fits) + #""}"#), nowMs: 4))
        #expect(document.encoded().count == 100)
        await store.close()
        let reopened = try open(configuration)
        #expect(reopened.document(lamp) == document)
        #expect(counter("gateway.shadow.rejected.total", [("message", "update"), ("reason", "too_large")]) == 1)
        #expect(counter("gateway.shadow.rejected.total", [("message", "report"), ("reason", "too_large")]) == 1)
        await reopened.close()
    }

    @Test func aNewDeviceOverMaxDevicesIsRefusedButKnownDevicesGoOn() async throws {
        var configuration = ShadowConfiguration()
        configuration.maxDevices = 2
        let store = try open(configuration)
        _ = try await store.updateDesired(lamp, update(#"{"a": 1}"#), nowMs: 1)
        _ = try await store.report(plug, report(#"{"a": 1}"#), nowMs: 1)
        let third = DeviceID("third")!
        let outcome = try await store.report(third, report(#"{"a": 1}"#), nowMs: 2)
        guard case .rejected(let refusal) = outcome else { throw TestFailure("not rejected: \(outcome)") }
        #expect(refusal.code == .tooManyDevices && refusal.version == 0)
        #expect(store.document(third).version == 0 && store.count == 2)
        guard case .applied = try await store.updateDesired(lamp, update(#"{"a": 2}"#), nowMs: 3) else { throw TestFailure("lamp") }
        #expect(try await store.remove(plug))
        guard case .applied = try await store.report(third, report(#"{"a": 1}"#), nowMs: 4) else { throw TestFailure("after remove") }
        #expect(counter("gateway.shadow.rejected.total", [("message", "report"), ("reason", "too_many_devices")]) == 1)
        await store.close()
    }

    @Test func documentsSurviveCloseAndReopenWithTheirTextAndOrder() async throws {
        let store = try open()
        _ = try await store.updateDesired(lamp, update(#"{"z": 18446744073709551617, "a": 0.10, "m": {"é": "ü\u0000"}}"#), nowMs: 111)
        _ = try await store.report(lamp, report(#"{"z": 1}"#), nowMs: 222)
        _ = try await store.report(plug, report(#"{"on": false}"#), nowMs: 333)
        let lampBefore = store.document(lamp)
        let plugBefore = store.document(plug)
        await store.close()

        let reopened = try open()
        #expect(reopened.count == 2)
        #expect(reopened.document(lamp) == lampBefore)
        #expect(reopened.document(plug) == plugBefore)
        #expect(reopened.document(lamp).encoded() == lampBefore.encoded())
        #expect(reopened.encodedDocument(lamp) == lampBefore.encoded())
        #expect(text(reopened.encodedDocument(DeviceID("nobody")!)) == #"{"desired":{},"reported":{},"version":0,"updatedAt":0}"#)
        #expect(
            text(reopened.document(lamp).encoded())
                == #"{"desired":{"z":18446744073709551617,"a":0.10,"m":{"é":"ü\u0000"}},"reported":{"z":1},"version":2,"updatedAt":222}"#)
        let (next, _) = try Self.applied(try await reopened.updateDesired(lamp, update(#"{"q": 1}"#, version: 2), nowMs: 444))
        #expect(next.version == 3)
        #expect(try metrics.expectGauge("gateway.shadow.documents").lastValue == 2)
        await reopened.close()
    }

    @Test func unreportedAndUndeliveredBookkeepingSurvivesReopening() async throws {
        let store = try open()
        _ = try await store.updateDesired(lamp, update(#"{"led": "on"}"#), nowMs: 1)  // v1, delta led
        _ = try await store.report(plug, report(#"{"on": true}"#), nowMs: 1)  // v1, no desired
        #expect(store.unreported().map(\.device) == [lamp, plug])
        #expect(store.undeliveredDeltas().map(\.device) == [lamp])

        try await store.markReported(lamp, version: 1)
        try await store.markDeltaSent(lamp, version: 1)
        #expect(store.unreported().map(\.device) == [plug])
        #expect(store.undeliveredDeltas().isEmpty)

        _ = try await store.updateDesired(lamp, update(#"{"level": 2}"#), nowMs: 2)  // v2
        _ = try await store.report(lamp, report(#"{"led": "on"}"#), nowMs: 3)  // v3: delta level only
        try await store.markReported(lamp, version: 2)  // v3 still to go
        try await store.markReported(lamp, version: 1)  // lower: no effect
        #expect(store.document(lamp).reportedVersion == 2)
        await store.close()

        let reopened = try open()
        #expect(reopened.unreported().map(\.device) == [lamp, plug])
        #expect(reopened.unreported().first?.version == 3)
        #expect(reopened.undeliveredDeltas().map(\.device) == [lamp])
        #expect(text(reopened.undeliveredDeltas()[0].encodedDelta()) == #"{"delta":{"level":2},"version":3}"#)

        // Marks beyond the document's version count as its version; unknown devices are ignored.
        try await reopened.markReported(lamp, version: 99)
        try await reopened.markReported(plug, version: 1)
        try await reopened.markDeltaSent(lamp, version: 3)
        try await reopened.markReported(DeviceID("nobody")!, version: 5)
        #expect(reopened.document(lamp).reportedVersion == 3)
        #expect(reopened.unreported().isEmpty && reopened.undeliveredDeltas().isEmpty)

        // A report that reaches desired leaves no delta to deliver, although desired changed since.
        _ = try await reopened.updateDesired(lamp, update(#"{"level": 5}"#), nowMs: 4)
        #expect(reopened.undeliveredDeltas().map(\.device) == [lamp])
        _ = try await reopened.report(lamp, report(#"{"level": 5}"#), nowMs: 5)
        #expect(reopened.undeliveredDeltas().isEmpty)
        await reopened.close()
        let again = try open()
        #expect(again.document(lamp).reportedVersion == 3)
        await again.close()
    }

    @Test func concurrentChangesOfOneDeviceAreSerialized() async throws {
        let store = try open()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    _ = try await store.updateDesired(self.lamp, self.update(#"{"k\#(index)": \#(index)}"#), nowMs: Int64(index))
                }
            }
            try await group.waitForAll()
        }
        #expect(store.document(lamp).version == 40)
        #expect(store.document(lamp).desired.count == 40)
        // Forty updates expecting version 40: exactly one applies.
        let outcomes = try await withThrowingTaskGroup(of: ShadowOutcome.self) { group in
            for index in 0..<40 {
                group.addTask { try await store.updateDesired(self.lamp, self.update(#"{"w": \#(index)}"#, version: 40), nowMs: 100) }
            }
            return try await group.reduce(into: [ShadowOutcome]()) { $0.append($1) }
        }
        #expect(outcomes.filter { if case .applied = $0 { true } else { false } }.count == 1)
        #expect(outcomes.filter { if case .conflict = $0 { true } else { false } }.count == 39)
        #expect(store.document(lamp).version == 41)
        await store.close()
    }

    @Test func rawMessagesAreParsedWithTheMessageCapAndRefusalsCounted() async throws {
        var configuration = ShadowConfiguration()
        configuration.maxMessageBytes = 64
        let store = try open(configuration)
        let (document, _) = try Self.applied(try await store.updateDesired(lamp, message: Array(#"{"desired":{"led":"on"},"version":0}"#.utf8), nowMs: 1))
        #expect(document.version == 1)

        let broken = try await store.updateDesired(lamp, message: Array(#"{"clientToken":"x1","desired":{"#.utf8), nowMs: 2)
        #expect(broken.refusal?.code == .invalid && broken.refusal?.clientToken == "x1" && broken.refusal?.version == 1)
        let tooBig = try await store.report(lamp, message: Array((#"{"reported":{"s":""# + String(repeating: "x", count: 64) + #""}}"#).utf8), nowMs: 3)
        #expect(tooBig.refusal?.code == .tooLarge)
        let wrongSide = try await store.report(lamp, message: Array(#"{"desired":{"led":"off"}}"#.utf8), nowMs: 4)
        #expect(wrongSide.refusal?.code == .invalid)
        let (reported, _) = try Self.applied(try await store.report(lamp, message: Array(#"{"reported":{"led":"on"}}"#.utf8), nowMs: 5))
        #expect(reported.version == 2 && reported.delta.isEmpty)

        #expect(store.document(lamp).version == 2)
        #expect(counter("gateway.shadow.updates.total", [("outcome", "rejected")]) == 1)
        #expect(counter("gateway.shadow.reports.total", [("outcome", "rejected")]) == 2)
        #expect(counter("gateway.shadow.rejected.total", [("message", "update"), ("reason", "invalid")]) == 1)
        #expect(counter("gateway.shadow.rejected.total", [("message", "report"), ("reason", "too_large")]) == 1)
        #expect(counter("gateway.shadow.rejected.total", [("message", "report"), ("reason", "invalid")]) == 1)
        await store.close()
    }

    @Test func aPatchNestedBeyondWhatReloadsIsRefused() async throws {
        let store = try open()
        var value: JSONValue = 1
        for _ in 0..<JSONValue.defaultMaxDepth { value = ["k": value] }
        guard case .object(let patch) = value else { throw TestFailure("no object") }
        let outcome = try await store.updateDesired(lamp, ShadowUpdate(desired: patch), nowMs: 1)
        #expect(outcome.refusal?.code == .invalid)
        #expect(store.count == 0)
        await store.close()
    }

    @Test func removeForgetsTheDocumentDurably() async throws {
        let store = try open()
        _ = try await store.updateDesired(lamp, update(#"{"a": 1}"#), nowMs: 1)
        #expect(try await store.remove(lamp))
        #expect(try await store.remove(lamp) == false)
        #expect(store.document(lamp).version == 0)
        await store.close()
        let again = try open()
        #expect(again.count == 0)
        await again.close()
    }

    @Test func aClosedStoreRefusesChangesWithATypedErrorCountedAndLoggedOncePerTenSeconds() async throws {
        let recorder = LogRecorder()
        let store = try ShadowStore(path: path, configuration: ShadowConfiguration(), logger: recorder.logger, metricsFactory: metrics)
        await store.close()
        for nowMs: Int64 in [1, 2] {
            await #expect(throws: ShadowError(.closed, "the shadow store is closed")) {
                _ = try await store.updateDesired(self.lamp, self.update(#"{"a": 1}"#), nowMs: nowMs)
            }
        }
        #expect(counter("gateway.shadow.updates.total", [("outcome", "failed")]) == 2)
        let failures = recorder.recorded.filter { $0.message == "shadow change not stored" }
        #expect(failures.count == 1 && failures.first?.level == .error && failures.first?.metadata["device.id"] == "lamp-1")
        #expect(store.document(lamp).version == 0)
    }

    @Test func changesAreLoggedWithDeviceAndVersionAndRefusalsAtMostOncePerTenSecondsWithACount() async throws {
        let recorder = LogRecorder()
        let store = try ShadowStore(path: path, configuration: ShadowConfiguration(), logger: recorder.logger, metricsFactory: metrics)
        _ = try await store.updateDesired(lamp, update(#"{"a": 1}"#), nowMs: 1_000)
        let change = try #require(recorder.recorded.first { $0.message == "shadow desired changed" })
        #expect(change.level == .info && change.metadata["device.id"] == "lamp-1" && change.metadata["shadow.version"] == "1")

        for nowMs: Int64 in [2_000, 3_000, 11_999] {
            _ = try await store.report(lamp, message: Array("nope".utf8), nowMs: nowMs)
        }
        var refusals = recorder.recorded.filter { $0.message == "shadow report refused" }
        #expect(refusals.count == 1)
        #expect(refusals.first?.level == .warning)
        #expect(refusals.first?.metadata["reason"] == "invalid" && refusals.first?.metadata["count"] == "1")
        #expect(refusals.first?.metadata["device.id"] == "lamp-1" && refusals.first?.metadata["shadow.version"] == "1")
        // Another kind is logged on its own; a conflict is no fault (notice).
        _ = try await store.updateDesired(lamp, update(#"{"a": 2}"#, version: 7), nowMs: 3_000)
        let conflict = try #require(recorder.recorded.first { $0.message == "shadow update refused" })
        #expect(conflict.level == .notice && conflict.metadata["reason"] == "version_conflict")
        // Ten seconds after the last line: one line for the two suppressed and this one.
        _ = try await store.report(lamp, message: Array("nope".utf8), nowMs: 12_000)
        refusals = recorder.recorded.filter { $0.message == "shadow report refused" }
        #expect(refusals.count == 2)
        #expect(refusals.last?.metadata["count"] == "3")
        #expect(counter("gateway.shadow.rejected.total", [("message", "report"), ("reason", "invalid")]) == 4)
        await store.close()
    }

    @Test func aDamagedRowIsLeftOutAtOpenAndTheOthersLoad() async throws {
        let store = try open()
        _ = try await store.updateDesired(lamp, update(#"{"a": 1}"#), nowMs: 1)
        _ = try await store.updateDesired(plug, update(#"{"b": 2}"#), nowMs: 1)
        await store.close()
        let connection = try SQLiteConnection.open(path: path, readOnly: false)
        try connection.execute("UPDATE shadows SET desired = '{broken' WHERE device_id = 'plug_2'")
        let reopened = try open()
        #expect(reopened.count == 1)
        #expect(reopened.document(lamp).version == 1)
        #expect(reopened.document(plug).version == 0)
        // The device's next change replaces the damaged row.
        guard case .applied = try await reopened.updateDesired(plug, update(#"{"b": 3}"#), nowMs: 2) else { throw TestFailure("plug") }
        await reopened.close()
    }
}
