import IsthmusKubeTypes
import Synchronization

/// Keeps an in-memory copy of a set of objects current: lists, then watches
/// from the list's resourceVersion (with bookmarks), re-lists on 410, backs
/// off on errors and 429, and tells its consumer about every change.
///
/// ```swift
/// let informer = Informer(client: client, resource: .secrets, namespace: "d8-istio")
/// let runner = Task { await informer.run() }
/// await informer.waitUntilSynced()
/// for await event in informer.events { ... informer.get(namespace: "d8-istio", name: "x") ... }
/// ```
///
/// The cache is updated before the event for a change is delivered, so a
/// consumer reading the cache sees at least what the event says.
/// The retry decisions are `InformerStateMachine`'s.
public final class Informer: Sendable {
    public struct Options: Sendable {
        /// LIST page size (`limit`); nil lists in one request.
        public var pageSize: Int? = 500
        public var backoff: InformerStateMachine.Backoff = .standard
        /// Hand every cached object out again as `.resync` this often; nil never.
        public var resyncPeriod: Duration?
        public var watchTimeoutSeconds: ClosedRange<Int> = 300...600
        /// Seeds the jitter; nil picks one at random.
        public var seed: UInt64?
        public init() {}
    }

    /// Counts for metrics and tests.
    public struct Statistics: Sendable, Equatable {
        public var lists = 0
        public var watches = 0
        /// Re-lists forced by 410 Expired.
        public var expired = 0
        /// Failed lists and watches (transport, 5xx, 429, ...).
        public var failures = 0
        public var throttled = 0
        public var lastError: String?
    }

    public let client: KubeClient
    public let resource: KubeResource
    public let namespace: String?
    public let labelSelector: String?
    public let fieldSelector: String?
    public let options: Options

    /// Changes in order, for one consumer. Ends when `run()` returns.
    public let events: AsyncStream<InformerEvent>
    private let continuation: AsyncStream<InformerEvent>.Continuation

    private struct State {
        var cache = InformerCache()
        var synced = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        var statistics = Statistics()
        var resourceVersion: String?
    }
    private let state = Mutex(State())

    /// `namespace` nil watches all namespaces (or a cluster-scoped resource).
    public init(client: KubeClient, resource: KubeResource, namespace: String? = nil, labelSelector: String? = nil,
                fieldSelector: String? = nil, options: Options = Options()) {
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.options = options
        (events, continuation) = AsyncStream.makeStream(bufferingPolicy: .unbounded)
    }

    // MARK: Reading the cache

    /// True once the first list is in the cache.
    public var hasSynced: Bool { state.withLock { $0.synced } }

    /// Returns when the first list is in the cache (or at once if the task is cancelled).
    public func waitUntilSynced() async {
        let id = state.withLock { s in
            s.nextWaiter += 1
            return s.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s in
                    if s.synced || Task.isCancelled { return true }
                    s.waiters[id] = waiter
                    return false
                }
                if resumeNow { waiter.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// The cached object, if any. `namespace` nil for cluster-scoped resources.
    public func get(namespace: String? = nil, name: String) -> JSON? {
        let key = InformerCache.key(namespace: resource.namespaced ? namespace : nil, name: name)
        return state.withLock { $0.cache.objects[key] }
    }

    /// Every cached object, ordered by key.
    public func list() -> [JSON] {
        state.withLock { s in s.cache.objects.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// The resourceVersion the informer is current to.
    public var resourceVersion: String? { state.withLock { $0.resourceVersion } }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    // MARK: Running

    /// Lists and watches until the calling task is cancelled, then ends `events`.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listAndWatch() }
            if let period = options.resyncPeriod {
                group.addTask { await self.resyncLoop(every: period) }
            }
            await group.next()
            group.cancelAll()
        }
        continuation.finish()
        let waiters = state.withLock { s in
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    private func listAndWatch() async {
        var machine = InformerStateMachine(backoff: options.backoff, watchTimeoutSeconds: options.watchTimeoutSeconds,
                                           seed: options.seed ?? UInt64.random(in: 0...UInt64.max))
        var action = machine.start()
        while !Task.isCancelled {
            switch action {
            case .list(let delay):
                guard await sleep(delay) else { return }
                do {
                    let list = try await client.list(resource, namespace: namespace, labelSelector: labelSelector,
                                                     fieldSelector: fieldSelector, limit: options.pageSize)
                    replace(with: list)
                    action = machine.listSucceeded(resourceVersion: list.resourceVersion)
                } catch {
                    if Task.isCancelled { return }
                    record(error)
                    action = machine.listFailed(.init(error))
                }

            case .watch(let resourceVersion, let delay, let timeoutSeconds):
                guard await sleep(delay) else { return }
                state.withLock { $0.statistics.watches += 1 }
                var end = InformerStateMachine.WatchEnd.clean
                do {
                    let watch = try await client.watch(
                        resource, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector,
                        resourceVersion: resourceVersion, allowWatchBookmarks: true, timeoutSeconds: timeoutSeconds)
                    stream: for try await event in watch {
                        if case .error(let status) = event {
                            let error = KubeClientError.status(status, retryAfter: nil)
                            record(error)
                            end = .failed(.init(error))
                            break stream
                        }
                        apply(event)
                        machine.observed(resourceVersion: event.resourceVersion)
                        state.withLock { $0.resourceVersion = machine.resourceVersion }
                    }
                } catch {
                    if Task.isCancelled { return }
                    record(error)
                    end = .failed(.init(error))
                }
                action = machine.watchEnded(end)
            }
        }
    }

    private func replace(with list: KubeList) {
        let (changes, first) = state.withLock { s in
            let changes = s.cache.replace(with: list.items)
            let first = !s.synced
            s.synced = true
            s.statistics.lists += 1
            s.resourceVersion = list.resourceVersion
            return (changes, first)
        }
        for change in changes { continuation.yield(change) }
        if first {
            continuation.yield(.synced)
            let waiters = state.withLock { s in
                defer { s.waiters = [:] }
                return Array(s.waiters.values)
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    private func apply(_ event: KubeWatchEvent) {
        if let change = state.withLock({ $0.cache.apply(event) }) {
            continuation.yield(change)
        }
    }

    private func record(_ error: KubeClientError) {
        state.withLock { s in
            if error.isGone {
                s.statistics.expired += 1
            } else {
                s.statistics.failures += 1
                if error.isTooManyRequests { s.statistics.throttled += 1 }
            }
            s.statistics.lastError = error.description
        }
    }

    private func resyncLoop(every period: Duration) async {
        while await sleep(period) {
            let objects = state.withLock { s in s.synced ? s.cache.objects.sorted { $0.key < $1.key }.map(\.value) : [] }
            for object in objects { continuation.yield(.resync(object)) }
        }
    }

    /// False when cancelled while waiting.
    private func sleep(_ duration: Duration) async -> Bool {
        if duration > .zero {
            do { try await Task.sleep(for: duration) } catch { return false }
        }
        return !Task.isCancelled
    }
}
