import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeClient
import IsthmusKubeTypes
import IsthmusTestSupport
import Synchronization
import Testing

@Suite struct LeaderElectionStateTests {
    let t0 = ContinuousClock.now

    @Test func noLeaseCreatesOne() {
        var s = LeaderElectionState(identity: "a", leaseDuration: .seconds(15))
        #expect(s.decide(current: nil, now: t0, timestamp: "T0") ==
            .create(LeaseRecord(holderIdentity: "a", leaseDurationSeconds: 15, acquireTime: "T0", renewTime: "T0")))
    }

    @Test func anotherHoldersLeaseIsTakenOnlyAfterItStopsChangingForItsDuration() {
        var s = LeaderElectionState(identity: "b", leaseDuration: .seconds(15))
        let held = LeaseRecord(holderIdentity: "a", leaseDurationSeconds: 10, acquireTime: "T0", renewTime: "T0", leaseTransitions: 3)
        #expect(s.decide(current: held, now: t0, timestamp: "T1") == .wait(holder: "a"))
        #expect(s.decide(current: held, now: t0 + .seconds(9), timestamp: "T2") == .wait(holder: "a"))
        // A renewal (the record changed) restarts the clock, whatever time it claims.
        var renewed = held
        renewed.renewTime = "1999-01-01T00:00:00.000000Z"
        #expect(s.decide(current: renewed, now: t0 + .seconds(9), timestamp: "T3") == .wait(holder: "a"))
        #expect(s.decide(current: renewed, now: t0 + .seconds(18), timestamp: "T4") == .wait(holder: "a"))
        #expect(s.decide(current: renewed, now: t0 + .seconds(19), timestamp: "T5") ==
            .write(LeaseRecord(holderIdentity: "b", leaseDurationSeconds: 15, acquireTime: "T5", renewTime: "T5", leaseTransitions: 4)))
    }

    @Test func ownLeaseIsRenewedKeepingAcquireTime() {
        var s = LeaderElectionState(identity: "a", leaseDuration: .seconds(15))
        let mine = LeaseRecord(holderIdentity: "a", leaseDurationSeconds: 15, acquireTime: "T0", renewTime: "T0", leaseTransitions: 2)
        #expect(s.decide(current: mine, now: t0, timestamp: "T1") ==
            .write(LeaseRecord(holderIdentity: "a", leaseDurationSeconds: 15, acquireTime: "T0", renewTime: "T1", leaseTransitions: 2)))
    }

    @Test func releasedLeaseIsTakenAtOnce() {
        var s = LeaderElectionState(identity: "b", leaseDuration: .seconds(15))
        let released = LeaseRecord(holderIdentity: "", leaseDurationSeconds: 1, acquireTime: "T0", renewTime: "T0", leaseTransitions: 1)
        #expect(s.decide(current: released, now: t0, timestamp: "T1") ==
            .write(LeaseRecord(holderIdentity: "b", leaseDurationSeconds: 15, acquireTime: "T1", renewTime: "T1", leaseTransitions: 2)))
    }
}

/// Registers coordination.k8s.io/v1 Lease, which the embedded server does not build in.
func installLeaseType(_ server: FakeAPIServer) throws {
    let crd = try JSON(parsing: """
        {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
         "metadata":{"name":"leases.coordination.k8s.io"},
         "spec":{"group":"coordination.k8s.io","scope":"Namespaced",
           "names":{"plural":"leases","singular":"lease","kind":"Lease","listKind":"LeaseList"},
           "versions":[{"name":"v1","served":true,"storage":true,
             "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}
        """)
    try server.create(resource: "customresourcedefinitions", group: "apiextensions.k8s.io", object: crd)
}

/// Counts how often each replica's work started and was cancelled.
final class WorkLog: Sendable {
    let state = Mutex<[String: (started: Int, ended: Int)]>([:])
    func work(_ who: String) -> @Sendable () async -> Void {
        { [self] in
            state.withLock { $0[who, default: (0, 0)].started += 1 }
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(20)) }
            state.withLock { $0[who, default: (0, 0)].ended += 1 }
        }
    }
    func running(_ who: String) -> Bool { state.withLock { ($0[who]?.started ?? 0) > ($0[who]?.ended ?? 0) } }
}

@Suite struct LeaderElectorTests {
    func elector(_ kube: KubeTestServer, _ identity: String) -> LeaderElector {
        var configuration = LeaderElector.Configuration(namespace: "kube-system", name: "isthmus-controller", identity: identity)
        configuration.leaseDuration = .seconds(3)
        configuration.renewDeadline = .seconds(2)
        configuration.retryPeriod = .milliseconds(200)
        return LeaderElector(client: kube.client, configuration: configuration)
    }

    @Test func oneLeaderAtATimeAndHandOverOnRelease() async throws {
        let kube = try await KubeTestServer.start()
        try installLeaseType(kube.server)
        let log = WorkLog()
        let a = elector(kube, "replica-a"), b = elector(kube, "replica-b")
        let runA = Task { await a.run(log.work("a")) }
        await eventually("a to lead", deadline: .seconds(60)) { a.isLeader && log.running("a") }
        let runB = Task { await b.run(log.work("b")) }
        // For longer than the lease duration, b stays a follower: a keeps renewing.
        let until = ContinuousClock.now + .seconds(4)
        while ContinuousClock.now < until {
            #expect(!b.isLeader && !log.running("b"))
            try await Task.sleep(for: .milliseconds(100))
        }
        let lease = try await kube.client.get(.leases, namespace: "kube-system", name: "isthmus-controller")
        #expect(lease.value(at: ["spec", "holderIdentity"])?.stringValue == "replica-a")

        runA.cancel()
        await runA.value
        #expect(!log.running("a"))
        // a released the lease, so b takes it well before a lease duration passes.
        await eventually("b to lead", deadline: .seconds(60)) { b.isLeader && log.running("b") }
        let taken = try await kube.client.get(.leases, namespace: "kube-system", name: "isthmus-controller")
        #expect(taken.value(at: ["spec", "holderIdentity"])?.stringValue == "replica-b")
        #expect((taken.value(at: ["spec", "leaseTransitions"])?.intValue ?? 0) >= 1)
        runB.cancel()
        await runB.value
        try await kube.shutdown()
    }

    @Test func cancellingReleasesTheLease() async throws {
        let kube = try await KubeTestServer.start()
        try installLeaseType(kube.server)
        let log = WorkLog()
        let a = elector(kube, "replica-a")
        let runA = Task { await a.run(log.work("a")) }
        await eventually("a to lead", deadline: .seconds(60)) { a.isLeader }
        runA.cancel()
        await runA.value
        let lease = try await kube.client.get(.leases, namespace: "kube-system", name: "isthmus-controller")
        #expect(lease.value(at: ["spec", "holderIdentity"])?.stringValue == "")
        #expect(!a.isLeader && !log.running("a"))
        try await kube.shutdown()
    }

    @Test func leaderThatCannotRenewStopsItsWork() async throws {
        let kube = try await KubeTestServer.start()
        try installLeaseType(kube.server)
        let log = WorkLog()
        let a = elector(kube, "replica-a")
        let runA = Task { await a.run(log.work("a")) }
        await eventually("a to lead", deadline: .seconds(60)) { a.isLeader && log.running("a") }
        var faults = FaultInjection()
        faults.errorFraction = 1
        kube.server.setFaults(faults)
        // Past the renew deadline the work is cancelled, before the lease could expire for others.
        await eventually("a to step down", deadline: .seconds(30)) { !a.isLeader && !log.running("a") }
        runA.cancel()
        await runA.value
        try await kube.shutdown()
    }
}
