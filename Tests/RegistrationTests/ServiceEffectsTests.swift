import DeviceLink
import Foundation
import GatewayCore
import Logging
import MQTT
import Registration
import REST
import ServiceFakes
import Testing

/// The saga against real HTTP services on loopback and a real mosquitto with dynamic security.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ServiceEffectsTests {
    struct Bed {
        let services: FakeServices
        let broker: DynsecBroker
        let accounts: BrokerAccounts
        let local: LocalRegistry
        let saga: RegistrationSaga
    }

    func withBed(_ body: (Bed) async throws -> Void) async throws {
        let services = FakeServices()
        try await services.start()
        let broker = try DynsecBroker()
        try await broker.start()
        let admin = broker.client("gateway-admin", username: broker.adminUser, password: broker.adminPassword, subscriptions: [BrokerAccounts.responseTopic])
        let accounts = BrokerAccounts(client: admin, logger: Logger(label: "saga-it"))
        let running = Task { await accounts.run() }
        try await BrokerAccountsTests.until("the admin connection and its subscription") { accounts.isReady }
        let directory = NSTemporaryDirectory() + "saga-it-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let local = try LocalRegistry(path: directory + "/registrations.db")
        let client = { (name: String) in
            ServiceClient(name: name, baseURL: services.baseURL, timeout: .seconds(2), logger: Logger(label: "saga-it"))
        }
        let effects = ServiceEffects(users: client("user"), registry: client("registry"), billing: client("billing"), local: local, accounts: accounts)
        var configuration = RegistrationSaga.Configuration()
        configuration.compensationAttempts = 3
        configuration.compensationBackoff = .milliseconds(10)
        let saga = RegistrationSaga(
            store: try SagaStore(path: directory + "/registrations.db"), effects: effects, configuration: configuration, logger: Logger(label: "saga-it"))
        try await body(Bed(services: services, broker: broker, accounts: accounts, local: local, saga: saga))
        await accounts.stop()
        await running.value
        await services.stop()
    }

    func request(_ device: String, user: String = "ada", premium: Bool = true) -> RegistrationRequest {
        RegistrationRequest(requestID: UUID().uuidString, device: DeviceID(device)!, userID: user, type: "speaker", premium: premium)
    }

    @Test func aRegisteredDeviceConnectsWithItsOwnCredentialsAndEveryServiceWasCalled() async throws {
        try await withBed { bed in
            bed.services.users.withLock { $0["ada"] = .init(quota: 3, count: 1) }
            let outcome = await bed.saga.register(request("hall-speaker"))
            guard case .registered(let password, let registryID) = outcome else { Issue.record("\(outcome)"); return }
            #expect(registryID == "r-1")
            #expect(bed.services.recorded == [
                "GET /api/users/ada", "POST /api/devices", "POST /api/users/ada/devices", "POST /api/billing/ada/devices",
            ])
            #expect(await bed.local.device(DeviceID("hall-speaker")!)?.userID == "ada")
            let client = bed.broker.client("hall-speaker", username: "hall-speaker", password: password)
            client.start()
            try await BrokerAccountsTests.until("the device to connect with its credentials") { client.isConnected }
            await client.stop()
        }
    }

    @Test func aFailingRegistryUndoesTheBrokerAccountAndTheLocalRecord() async throws {
        try await withBed { bed in
            bed.services.users.withLock { $0["ada"] = .init() }
            bed.services.fail("POST /api/devices", status: 503)
            let outcome = await bed.saga.register(request("kitchen"))
            guard case .failed(let reason) = outcome else { Issue.record("\(outcome)"); return }
            #expect(reason.contains("503"))
            // The registry may have created it before failing: it is deleted too.
            #expect(bed.services.recorded == ["GET /api/users/ada", "POST /api/devices", "DELETE /api/devices/kitchen"])
            #expect(await bed.local.device(DeviceID("kitchen")!) == nil)
            let kitchenAccount = try await bed.accounts.account("kitchen")
            #expect(kitchenAccount == nil, "no broker account is left")
        }
    }

    @Test func aBlockedUserOrAFullQuotaIsRefusedBeforeAnythingChanges() async throws {
        try await withBed { bed in
            bed.services.users.withLock {
                $0["full"] = .init(quota: 2, count: 2)
                $0["mallory"] = .init(blocked: true)
            }
            let full = await bed.saga.register(request("d1", user: "full"))
            #expect(full == .failed(reason: "checkQuota: device quota exceeded: user full has 2 of 2 devices"))
            let blocked = await bed.saga.register(request("d2", user: "mallory"))
            guard case .failed(let reason) = blocked else { Issue.record("\(blocked)"); return }
            #expect(reason.contains("blocked"))
            let unknown = await bed.saga.register(request("d3", user: "nobody"))
            guard case .failed(let why) = unknown else { Issue.record("\(unknown)"); return }
            #expect(why.contains("does not exist"))
            #expect(bed.services.recorded == ["GET /api/users/full", "GET /api/users/mallory", "GET /api/users/nobody"])
            #expect(await bed.local.all.isEmpty)
        }
    }

    @Test func aFailingBillingServiceUndoesEverythingInReverse() async throws {
        try await withBed { bed in
            bed.services.users.withLock { $0["ada"] = .init() }
            bed.services.fail("POST /api/billing", status: 400)
            let outcome = await bed.saga.register(request("den"))
            guard case .failed = outcome else { Issue.record("\(outcome)"); return }
            #expect(bed.services.recorded == [
                "GET /api/users/ada", "POST /api/devices", "POST /api/users/ada/devices", "POST /api/billing/ada/devices",
                "DELETE /api/users/ada/devices/den", "DELETE /api/devices/r-1",
            ])
            let denAccount = try await bed.accounts.account("den")
            #expect(denAccount == nil, "no broker account is left")
        }
    }

    @Test func aBrokerAccountTheSagaDidNotCreateFailsTheStepAndIsNeitherResetNorRemoved() async throws {
        try await withBed { bed in
            bed.services.users.withLock { $0["ada"] = .init() }
            // Made by someone else (another registration's marker stands for "not this saga").
            try await bed.accounts.createAccount(for: DeviceID("loft")!, password: "someone-elses-password", requestID: "req-other")
            let outcome = await bed.saga.register(request("loft"))
            guard case .failed(let reason) = outcome else { Issue.record("\(outcome)"); return }
            #expect(reason.contains("createBrokerAccount"), "\(reason)")
            #expect(await bed.local.device(DeviceID("loft")!) == nil, "the local record is compensated")
            let client = bed.broker.client("loft", username: "loft", password: "someone-elses-password")
            client.start()
            try await BrokerAccountsTests.until("the account's owner still connects") { client.isConnected }
            await client.stop()
        }
    }
}
