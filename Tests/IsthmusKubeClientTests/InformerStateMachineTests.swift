import IsthmusKubeClient
import IsthmusKubeTypes
import Testing

@Suite struct InformerStateMachineTests {
    static let backoff = InformerStateMachine.Backoff(initial: .milliseconds(100), maximum: .seconds(2), factor: 2, jitter: 0)

    func watchRV(_ action: InformerStateMachine.Action) -> String? {
        if case .watch(let rv, _, _) = action { return rv }
        return nil
    }
    func delay(_ action: InformerStateMachine.Action) -> Duration {
        switch action {
        case .list(let after), .watch(_, let after, _): after
        }
    }

    @Test func listThenWatchFromItsResourceVersion() {
        var m = InformerStateMachine(backoff: Self.backoff, seed: 1)
        #expect(m.start() == .list(after: .zero))
        #expect(!m.hasSynced)
        let action = m.listSucceeded(resourceVersion: "100")
        #expect(watchRV(action) == "100")
        #expect(delay(action) == .zero)
        #expect(m.hasSynced)
    }

    @Test func cleanEndResumesFromTheLastSeenResourceVersion() {
        var m = InformerStateMachine(backoff: Self.backoff, seed: 1)
        _ = m.listSucceeded(resourceVersion: "100")
        m.observed(resourceVersion: "105")
        m.observed(resourceVersion: "110")  // a bookmark
        let action = m.watchEnded(.clean)
        #expect(watchRV(action) == "110")
        #expect(delay(action) == .zero)
    }

    @Test func expiredReListsAtOnce() {
        var m = InformerStateMachine(backoff: Self.backoff, seed: 1)
        _ = m.listSucceeded(resourceVersion: "100")
        #expect(m.watchEnded(.failed(.expired)) == .list(after: .zero))
        // An expired continue token during a list: list again, at once.
        #expect(m.listFailed(.expired) == .list(after: .zero))
    }

    @Test func errorsBackOffExponentiallyUpToTheMaximumAndProgressResets() {
        var m = InformerStateMachine(backoff: Self.backoff, seed: 1)
        _ = m.listSucceeded(resourceVersion: "7")
        var delays: [Duration] = []
        for _ in 0..<7 {
            let action = m.watchEnded(.failed(.other))
            #expect(watchRV(action) == "7")  // a broken watch resumes; only 410 re-lists
            delays.append(delay(action))
        }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .milliseconds(1600), .seconds(2), .seconds(2)])
        m.observed(resourceVersion: "8")
        #expect(delay(m.watchEnded(.failed(.other))) == .milliseconds(100))
        #expect(watchRV(m.watchEnded(.clean)) == "8")
        #expect(m.consecutiveFailures == 0)
    }

    @Test func listFailuresRetryTheListWithBackoff() {
        var m = InformerStateMachine(backoff: Self.backoff, seed: 1)
        _ = m.start()
        #expect(m.listFailed(.other) == .list(after: .milliseconds(100)))
        #expect(m.listFailed(.other) == .list(after: .milliseconds(200)))
        #expect(!m.hasSynced)
        #expect(watchRV(m.listSucceeded(resourceVersion: "3")) == "3")
        #expect(m.consecutiveFailures == 0)
    }

    @Test func throttlingWaitsAtLeastRetryAfter() {
        var m = InformerStateMachine(backoff: Self.backoff, seed: 1)
        _ = m.listSucceeded(resourceVersion: "1")
        #expect(delay(m.watchEnded(.failed(.throttled(retryAfter: .seconds(3))))) == .seconds(3))
        // Without Retry-After, or when the backoff is longer, the backoff wins.
        #expect(delay(m.watchEnded(.failed(.throttled(retryAfter: nil)))) == .milliseconds(200))
        for _ in 0..<4 { _ = m.watchEnded(.failed(.other)) }
        #expect(delay(m.watchEnded(.failed(.throttled(retryAfter: .milliseconds(10))))) == .seconds(2))
    }

    @Test func jitterStaysWithinBoundsAndIsReproducible() {
        let jittery = InformerStateMachine.Backoff(initial: .milliseconds(100), maximum: .seconds(10), factor: 2, jitter: 1)
        func delays(seed: UInt64) -> [Duration] {
            var m = InformerStateMachine(backoff: jittery, seed: seed)
            _ = m.listSucceeded(resourceVersion: "1")
            return (0..<5).map { _ in delay(m.watchEnded(.failed(.other))) }
        }
        let a = delays(seed: 42)
        #expect(a == delays(seed: 42))
        #expect(a != delays(seed: 43))
        for (i, d) in a.enumerated() {
            let base = Duration.milliseconds(100) * (1 << i)
            #expect(d >= base && d < base * 2, "delay \(i): \(d)")
        }
    }

    @Test func watchTimeoutsAreSpreadOverTheRange() {
        var m = InformerStateMachine(backoff: Self.backoff, watchTimeoutSeconds: 300...600, seed: 9)
        _ = m.listSucceeded(resourceVersion: "1")
        var timeouts = Set<Int>()
        for _ in 0..<20 {
            if case .watch(_, _, let t) = m.watchEnded(.clean) { timeouts.insert(t) }
        }
        #expect(timeouts.allSatisfy { (300...600).contains($0) })
        #expect(timeouts.count > 5)
    }

    @Test func failureClassification() {
        #expect(InformerStateMachine.Failure(.status(Status.tooOldResourceVersion(requested: 1, oldest: 5), retryAfter: nil)) == .expired)
        #expect(InformerStateMachine.Failure(.status(.tooManyRequests(), retryAfter: .seconds(1))) == .throttled(retryAfter: .seconds(1)))
        #expect(InformerStateMachine.Failure(.status(.internalError("x"), retryAfter: nil)) == .other)
        #expect(InformerStateMachine.Failure(.transport("reset")) == .other)
    }
}

@Suite struct InformerCacheTests {
    func cm(_ name: String, ns: String = "default", rv: String) -> JSON {
        .object([("metadata", .object([("name", .string(name)), ("namespace", .string(ns)), ("resourceVersion", .string(rv))]))])
    }

    @Test func watchEventsChangeTheStoreAndRepeatsAreDropped() {
        var cache = InformerCache()
        #expect(cache.apply(.added(cm("a", rv: "1"))) == .added(cm("a", rv: "1")))
        #expect(cache.apply(.added(cm("a", rv: "1"))) == nil)
        #expect(cache.apply(.modified(cm("a", rv: "2"))) == .updated(old: cm("a", rv: "1"), new: cm("a", rv: "2")))
        #expect(cache.apply(.modified(cm("a", rv: "2"))) == nil)
        #expect(cache.apply(.modified(cm("b", ns: "x", rv: "3"))) == .added(cm("b", ns: "x", rv: "3")))
        #expect(Set(cache.objects.keys) == ["default/a", "x/b"])
        #expect(cache.apply(.bookmark(cm("", rv: "9"))) == nil)
        #expect(cache.apply(.deleted(cm("a", rv: "4"))) == .deleted(cm("a", rv: "4")))
        #expect(cache.apply(.deleted(cm("a", rv: "4"))) == nil)
        #expect(Set(cache.objects.keys) == ["x/b"])
    }

    @Test func relistDiffsAgainstTheStore() {
        var cache = InformerCache()
        _ = cache.replace(with: [cm("keep", rv: "1"), cm("change", rv: "2"), cm("gone", rv: "3")])
        let events = cache.replace(with: [cm("keep", rv: "1"), cm("change", rv: "5"), cm("new", rv: "6")])
        #expect(events == [
            .updated(old: cm("change", rv: "2"), new: cm("change", rv: "5")),
            .added(cm("new", rv: "6")),
            .deleted(cm("gone", rv: "3")),
        ])
        #expect(Set(cache.objects.keys) == ["default/keep", "default/change", "default/new"])
    }

    @Test func clusterScopedKeysHaveNoNamespace() {
        let node: JSON = .object([("metadata", .object([("name", .string("n1"))]))])
        #expect(InformerCache.key(of: node) == "n1")
    }
}
