import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeClient
import IsthmusKubeTypes
import IsthmusTestSupport
import Synchronization
import Testing

/// What the consumer of an informer's events rebuilds, checking that each
/// event makes sense given the ones before: no add of a known object, no
/// update or delete of an unknown one, resourceVersions only move forward.
final class EventMirror: Sendable {
    struct State {
        var objects: [String: UInt64] = [:]
        var changes = 0
        var deletes = 0
        var resyncs = 0
        var synced = 0
        var problems: [String] = []
    }
    let state = Mutex(State())

    static func rv(_ object: JSON?) -> UInt64 {
        object?.value(at: ["metadata", "resourceVersion"])?.stringValue.flatMap(UInt64.init) ?? 0
    }

    func consume(_ events: AsyncStream<InformerEvent>) async {
        for await event in events { apply(event) }
    }

    func apply(_ event: InformerEvent) {
        state.withLock { s in
            let key = event.object.map(InformerCache.key(of:)) ?? ""
            switch event {
            case .synced:
                s.synced += 1
            case .added(let object):
                if s.objects[key] != nil { s.problems.append("duplicate add \(key)") }
                s.objects[key] = Self.rv(object)
                s.changes += 1
            case .updated(let old, let new):
                if s.objects[key] != Self.rv(old) { s.problems.append("update of \(key) from \(Self.rv(old)), mirror has \(String(describing: s.objects[key]))") }
                if Self.rv(new) <= Self.rv(old) { s.problems.append("update of \(key) does not move forward") }
                s.objects[key] = Self.rv(new)
                s.changes += 1
            case .deleted:
                if s.objects.removeValue(forKey: key) == nil { s.problems.append("delete of unknown \(key)") }
                s.changes += 1
                s.deletes += 1
            case .resync(let object):
                if s.objects[key] != Self.rv(object) { s.problems.append("resync of \(key) differs") }
                s.resyncs += 1
            }
        }
    }
}

/// Drives random creates, updates and deletes of ConfigMaps in the server's
/// store (not through HTTP, so injected faults do not touch it) and tracks
/// what the store should hold.
struct ChangeDriver {
    let server: FakeAPIServer
    var expected: [String: UInt64] = [:]
    var random = SystemRandomNumberGenerator()

    mutating func change(_ index: Int, names: Int) throws {
        let name = "cm-\(Int.random(in: 0..<names, using: &random))"
        let key = "default/\(name)"
        if expected[key] == nil {
            let created = try server.create(resource: "configmaps", object: configMap(name, data: ["n": String(index)]))
            expected[key] = EventMirror.rv(created)
        } else if Int.random(in: 0..<10, using: &random) < 7 {
            let patched = try server.mergePatch(resource: "configmaps", namespace: "default", name: name,
                                                patch: .object([("data", .object([("n", .string(String(index)))]))]))
            expected[key] = EventMirror.rv(patched)
        } else {
            try server.delete(resource: "configmaps", namespace: "default", name: name)
            expected[key] = nil
        }
    }
}

func cacheState(_ informer: Informer) -> [String: UInt64] {
    Dictionary(uniqueKeysWithValues: informer.list().map { (InformerCache.key(of: $0), EventMirror.rv($0)) })
}

@Suite struct InformerTests {
    static func fastOptions() -> Informer.Options {
        var options = Informer.Options()
        options.pageSize = 7
        options.backoff = .init(initial: .milliseconds(10), maximum: .milliseconds(300))
        return options
    }

    /// 1,000 changes while watches are cut every few events and a fifth of
    /// requests fail with 429 (Retry-After) or 500: the cache ends equal to
    /// the server, and the consumer saw each change exactly once.
    @Test func cacheMatchesTheServerAfterAThousandChangesUnderFaults() async throws {
        let kube = try await KubeTestServer.start()
        var driver = ChangeDriver(server: kube.server)
        for i in 0..<40 { try driver.change(i, names: 60) }
        let seeded = driver.expected

        // Faults apply to requests made from now on, so they are on from the first list.
        var faults = FaultInjection()
        faults.cutWatchesAfterEvents = 25
        faults.errorFraction = 0.2
        faults.errorStatusCode = 429
        kube.server.setFaults(faults)

        let informer = Informer(client: kube.client, resource: .configMaps, namespace: "default", options: Self.fastOptions())
        let mirror = EventMirror()
        let consumer = Task { await mirror.consume(informer.events) }
        let runner = Task { await informer.run() }
        await informer.waitUntilSynced()
        #expect(informer.hasSynced)
        #expect(cacheState(informer) == seeded)
        #expect(informer.statistics.lists == 1)
        for i in 0..<1000 {
            if i == 500 {
                faults.errorStatusCode = 500
                kube.server.setFaults(faults)
            }
            // Values after the seeding's, so no patch is a no-op (which, as on a
            // real API server, would change nothing and send no event).
            try driver.change(40 + i, names: 60)
            if i % 20 == 0 { try await Task.sleep(for: .milliseconds(20)) }
        }
        let expected = driver.expected
        await eventually(
            "the informer cache to match the server \(informer.statistics) cache \(cacheState(informer).count) expected \(expected.count) differing \(cacheState(informer).filter { expected[$0.key] != $0.value }.count)",
            deadline: .seconds(120)) {
            cacheState(informer) == expected && mirror.state.withLock { $0.objects } == expected
        }
        kube.server.setFaults(FaultInjection())

        let stats = informer.statistics
        let mirrored = mirror.state.withLock { $0 }
        #expect(mirrored.problems == [])
        // Without a 410 there is no re-list, so every change arrived exactly once.
        #expect(stats.expired == 0 && stats.lists == 1)
        #expect(mirrored.changes == seeded.count + 1000)
        #expect(mirrored.synced == 1)
        // The faults did happen: watches were re-opened and requests throttled and failed.
        #expect(stats.watches > 1000 / 25)
        #expect(stats.throttled > 0)
        #expect(stats.failures > stats.throttled)
        runner.cancel()
        await runner.value
        await consumer.value  // the events stream ended with run()
        try await kube.shutdown()
    }

    /// Changes beyond the server's history while the informer cannot reach it:
    /// its next watch gets 410, it re-lists, and the re-list's differences
    /// (including deletions it never saw as events) reach the consumer.
    @Test func reListsAfterExpiredAndConverges() async throws {
        let kube = try await KubeTestServer.start(historyCapacity: 30)
        var driver = ChangeDriver(server: kube.server)
        for i in 0..<20 {
            let created = try kube.server.create(resource: "configmaps", object: configMap("seed-\(i)", data: ["n": String(i)]))
            driver.expected["default/seed-\(i)"] = EventMirror.rv(created)
        }
        var options = Self.fastOptions()
        // The watch open when the faults start ends by itself within seconds.
        options.watchTimeoutSeconds = 1...2
        let informer = Informer(client: kube.client, resource: .configMaps, namespace: "default", options: options)
        let mirror = EventMirror()
        let consumer = Task { await mirror.consume(informer.events) }
        let runner = Task { await informer.run() }
        await informer.waitUntilSynced()
        await eventually("the first watch", deadline: .seconds(60)) { kube.server.openWatchCount == 1 }

        // Every new request fails.
        var faults = FaultInjection()
        faults.errorFraction = 1
        faults.errorStatusCode = 503
        faults.cutWatchesAfterEvents = 1
        kube.server.setFaults(faults)
        try driver.change(0, names: 10)
        await eventually("the informer to be failing", deadline: .seconds(60)) { informer.statistics.failures >= 2 }

        for i in 0..<10 { try kube.server.delete(resource: "configmaps", namespace: "default", name: "seed-\(i)"); driver.expected["default/seed-\(i)"] = nil }
        for i in 1..<100 { try driver.change(i, names: 10) }
        kube.server.setFaults(FaultInjection())

        let expected = driver.expected
        await eventually("the informer cache to converge after the re-list \(informer.statistics)", deadline: .seconds(120)) {
            cacheState(informer) == expected && mirror.state.withLock { $0.objects } == expected
        }
        let stats = informer.statistics
        #expect(stats.expired >= 1)
        #expect(stats.lists >= 2)
        let mirrored = mirror.state.withLock { $0 }
        #expect(mirrored.problems == [])
        #expect(mirrored.deletes >= 10)
        runner.cancel()
        await runner.value
        await consumer.value
        try await kube.shutdown()
    }

    @Test func resyncHandsOutCachedObjectsAgain() async throws {
        let kube = try await KubeTestServer.start()
        try kube.server.create(resource: "configmaps", object: configMap("a"))
        try kube.server.create(resource: "configmaps", object: configMap("b", namespace: "kube-system"))
        var options = Self.fastOptions()
        options.resyncPeriod = .milliseconds(100)
        // All namespaces, and a label selector that matches nothing but `a`... none have labels, so no selector here.
        let informer = Informer(client: kube.client, resource: .configMaps, options: options)
        let mirror = EventMirror()
        let consumer = Task { await mirror.consume(informer.events) }
        let runner = Task { await informer.run() }
        await eventually("two rounds of resync", deadline: .seconds(60)) { mirror.state.withLock { $0.resyncs } >= 4 }
        #expect(informer.get(namespace: "kube-system", name: "b") != nil)
        #expect(informer.get(namespace: "default", name: "a") != nil)
        #expect(mirror.state.withLock { $0.problems } == [])
        runner.cancel()
        await runner.value
        await consumer.value
        try await kube.shutdown()
    }

    @Test func selectorsLimitWhatIsCached() async throws {
        let kube = try await KubeTestServer.start()
        try kube.server.create(resource: "configmaps", object: configMap("mine", labels: ["owner": "isthmus"]))
        try kube.server.create(resource: "configmaps", object: configMap("theirs", labels: ["owner": "other"]))
        let informer = Informer(client: kube.client, resource: .configMaps, namespace: "default",
                                labelSelector: "owner=isthmus", options: Self.fastOptions())
        let runner = Task { await informer.run() }
        await informer.waitUntilSynced()
        #expect(informer.list().map { $0.value(at: ["metadata", "name"])?.stringValue } == ["mine"])
        try kube.server.create(resource: "configmaps", object: configMap("mine-2", labels: ["owner": "isthmus"]))
        try kube.server.create(resource: "configmaps", object: configMap("theirs-2", labels: ["owner": "other"]))
        await eventually("the new matching object", deadline: .seconds(60)) { informer.get(namespace: "default", name: "mine-2") != nil }
        #expect(informer.get(namespace: "default", name: "theirs-2") == nil)
        runner.cancel()
        await runner.value
        await eventually("the watch to close", deadline: .seconds(60)) { kube.server.openWatchCount == 0 }
        try await kube.shutdown()
    }
}
