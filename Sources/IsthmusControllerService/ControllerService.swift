import Foundation
import IsthmusController
import IsthmusHTTP
import IsthmusKubeClient
import IsthmusKubeTypes
import IsthmusTrust
import Logging
import Synchronization

/// Everything `isthmus controller` is told at start.
public struct ControllerServiceConfiguration: Sendable {
    public var kube: KubeClientConfiguration
    public var clusterUUID: String
    /// Holds the cluster key Secret, the trusted peers Secret and the Lease.
    public var namespace: String
    public var keySecretName = ClusterKeySecret.defaultName
    public var peersSecretName = "isthmus-trusted-peers"
    public var peersSecretKey = "peers.json"
    /// Where istiod reads remote secrets and the mesh networks ConfigMap.
    public var istioNamespace = "istio-system"
    public var meshNetworksConfigMapName = "isthmus-mesh-networks"
    public var meshNetworksConfigMapKey = "meshNetworks"
    public var networking = ClusterNetworking()
    public var networkName: String?
    public var istioClusterID: String?
    public var tokenPolicy = APITokenPolicy()
    public var schedule = RefetchSchedule()
    public var enforceRequirements = true
    /// A round runs at least this often, so drift in the owned Secrets
    /// (someone edits or deletes one) is repaired without an event.
    public var resyncInterval: Duration = .seconds(30)
    /// Set to campaign for a Lease before reconciling (several replicas).
    public var leaderElection: LeaderElector.Configuration?
    /// Timeout of one metadata request.
    public var fetchTimeoutSeconds: Int64 = 10

    public init(kube: KubeClientConfiguration, clusterUUID: String, namespace: String) {
        self.kube = kube
        self.clusterUUID = clusterUUID
        self.namespace = namespace
    }
}

/// Why the controller cannot run: a broken cluster key Secret, or an API
/// error at start. The description is one line for the operator.
public struct ControllerServiceError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// What one round did, for logs and tests.
public struct RoundReport: Sendable {
    /// The writes made, in order.
    public var actions: [ReconcileAction]
    /// IstioMulticluster names whose metadata was fetched this round.
    public var fetched: [String]
}

/// The IstioMulticluster controller's I/O: ensures the cluster key Secret,
/// then runs rounds — list what is observed, fetch due metadata, plan with
/// the pure ``Reconciler``, apply the writes — whenever an IstioMulticluster
/// changes, a fetch falls due, or the resync interval passes.
public final class ControllerService: Sendable {
    public let configuration: ControllerServiceConfiguration
    public let client: KubeClient
    public let metrics: ControllerMetricsRegistry
    /// Serves the admin port's `/metrics`.
    public let exporter: MetricsExporter
    let fetcher: MetadataFetcher
    let logger: Logger
    private let wakeup = Wakeup()

    private struct LoopState {
        var identity: LocalIdentity?
        var schedule: [String: RefetchSchedule.PeerState] = [:]
        var roundsCompleted = 0
        var standingBy = false
    }
    private let state = Mutex(LoopState())
    private let start = ContinuousClock.now

    /// `logger` gets the events; none holds a token or a key. Silent unless given one.
    /// `metrics` is the process's exporter (the command bootstraps it), or one of its own.
    public init(configuration: ControllerServiceConfiguration,
                logger: Logger = Logger(label: "isthmus.controller", factory: { _ in SwiftLogNoOpLogHandler() }),
                metrics: MetricsExporter = MetricsExporter())
        throws(KubeConfigError) {
        self.configuration = configuration
        self.exporter = metrics
        self.metrics = ControllerMetricsRegistry(factory: metrics.factory)
        self.client = try KubeClient(configuration: configuration.kube)
        self.fetcher = MetadataFetcher(timeout: .seconds(configuration.fetchTimeoutSeconds))
        self.logger = logger
    }

    /// Ready once a round has completed, or while a replica waits for the
    /// Lease (it is healthy and ready to take over).
    public var isReady: Bool { state.withLock { $0.roundsCompleted > 0 || $0.standingBy } }

    /// Rounds completed since start.
    public var roundsCompleted: Int { state.withLock { $0.roundsCompleted } }

    /// Runs until the task is cancelled; with leader election, only while holding the Lease.
    public func run() async throws {
        guard let election = configuration.leaderElection else {
            try await lead()
            return
        }
        state.withLock { $0.standingBy = true }
        let elector = LeaderElector(client: client, configuration: election)
        logger.info("campaigning for Lease \(election.namespace)/\(election.name) as \(election.identity)")
        let failure = Mutex<(any Error)?>(nil)
        await elector.run { [self] in
            state.withLock { $0.standingBy = false }
            logger.info("leading")
            do { try await lead() } catch is CancellationError {} catch {
                logger.error("\(error)")
                failure.withLock { $0 = error }
            }
            state.withLock { $0.standingBy = true }
            logger.info("stopped leading")
        }
        if let error = failure.withLock({ $0 }) { throw error }
    }

    /// The leader's work: key, informer, rounds until cancelled.
    private func lead() async throws {
        _ = try await ensureIdentity()
        let informer = Informer(client: client, resource: .istioMulticlusters)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await informer.run() }
            group.addTask { [wakeup] in
                // Any change to an IstioMulticluster (including our own
                // status patches, which then plan nothing) starts a round.
                for await _ in informer.events { wakeup.signal() }
            }
            group.addTask { try await self.loop() }
            try await group.next()
            group.cancelAll()
        }
    }

    private func loop() async throws {
        while !Task.isCancelled {
            do {
                let report = try await reconcileOnce()
                if !report.actions.isEmpty {
                    logger.info("round wrote \(report.actions.map(Self.describe).joined(separator: ", "))")
                }
            } catch is CancellationError {
                return
            } catch {
                logger.error("round failed: \(error)")
            }
            let now = monotonicNow()
            let nextFetch = state.withLock { configuration.schedule.nextWake($0.schedule.values) }
            var delay = configuration.resyncInterval
            if let nextFetch { delay = min(delay, max(nextFetch - now, .milliseconds(10))) }
            await wakeup.wait(upTo: delay)
        }
    }

    // MARK: The cluster key

    /// Reads the cluster key Secret, creating it when missing; the same
    /// identity afterwards.
    public func ensureIdentity() async throws -> LocalIdentity {
        if let identity = state.withLock({ $0.identity }) { return identity }
        let ns = configuration.namespace, name = configuration.keySecretName
        for _ in 0..<5 {
            let existing = try await client.getIfPresent(.secrets, namespace: ns, name: name).flatMap(SecretObject.init(json:))
            let decision: ClusterKeySecret.Decision
            do { decision = try ClusterKeySecret.decide(existing: existing, namespace: ns, name: name) } catch {
                throw ControllerServiceError("cluster key: \(error.description)")
            }
            let key: SigningKeyPair
            switch decision {
            case .use(let k):
                key = k
            case .create(let secret, let k):
                // Another replica may make it first: then use theirs.
                guard try await createUnlessExists(secret) else { continue }
                logger.notice("created cluster key Secret \(ns)/\(name) (public key \(k.publicKey.fingerprint))")
                key = k
            }
            let identity = LocalIdentity(clusterUUID: configuration.clusterUUID, signingKey: key)
            state.withLock { $0.identity = identity }
            return identity
        }
        throw ControllerServiceError("cluster key: Secret \(ns)/\(name) keeps changing while it is read")
    }

    /// Creates `secret`; false when it already exists.
    private func createUnlessExists(_ secret: SecretObject) async throws(KubeClientError) -> Bool {
        do {
            _ = try await client.create(.secrets, namespace: secret.namespace, object: secret.json, fieldManager: Self.fieldManager)
            return true
        } catch {
            if error.isAlreadyExists { return false }
            throw error
        }
    }

    // MARK: A round

    static let fieldManager = "isthmus-controller"

    var reconciler: Reconciler {
        get throws {
            guard let identity = state.withLock({ $0.identity }) else { throw ControllerServiceError("no cluster key yet") }
            return Reconciler(configuration: ControllerConfiguration(
                local: identity, networking: configuration.networking, localNetworkName: configuration.networkName,
                localIstioClusterID: configuration.istioClusterID, istioNamespace: configuration.istioNamespace,
                trustedPeersSecretNamespace: configuration.namespace, trustedPeersSecretName: configuration.peersSecretName,
                trustedPeersSecretKey: configuration.peersSecretKey,
                meshNetworksConfigMapName: configuration.meshNetworksConfigMapName,
                meshNetworksConfigMapKey: configuration.meshNetworksConfigMapKey,
                tokenPolicy: configuration.tokenPolicy, enforceRequirements: configuration.enforceRequirements))
        }
    }

    /// One round: observe, fetch what is due, plan, write. After a Conflict
    /// it observes again and re-plans with the same fetch results.
    @discardableResult
    public func reconcileOnce() async throws -> RoundReport {
        let identity = try await ensureIdentity()
        let reconciler = try reconciler
        var observed = try await observe()
        let fetches = await fetchDue(observed.multiclusters, local: identity)
        var written: [ReconcileAction] = []
        attempts: for attempt in 1...5 {
            observed.fetches = fetches
            let now = Self.unixNow()
            let actions = reconciler.plan(current: observed, now: now)
            for action in actions {
                do {
                    try await apply(action)
                    written.append(action)
                } catch let error as KubeClientError where (error.isConflict || error.isAlreadyExists) && attempt < 5 {
                    logger.info("\(Self.describe(action)): \(error); planning again")
                    observed = try await observe()
                    continue attempts
                }
            }
            let desired = reconciler.desiredState(observed.applying(actions), now: now)
            metrics.replaceGauges(desired.gaugeSamples(), peers: Set(observed.multiclusters.map(\.name)))
            // Probed as often as the peer is fetched, not every round.
            for peer in desired.peers where fetches[peer.name] != nil {
                metrics.setPeerAPIUp(peer: peer.name, up: await probePeerAPI(peer.remoteSecret))
            }
            break
        }
        state.withLock { $0.roundsCompleted += 1 }
        return RoundReport(actions: written, fetched: fetches.keys.sorted())
    }

    /// The objects the planner reads, fresh from the API server: a cache
    /// could lag this controller's own writes and make it write them twice.
    func observe() async throws(KubeClientError) -> ObservedState {
        let items = try await client.list(.istioMulticlusters).items
        var multiclusters: [IstioMulticluster] = []
        for item in items {
            if let multicluster = try? IstioMulticluster(json: item) { multiclusters.append(multicluster) }
        }
        var secrets: [SecretObject] = []
        if let peers = try await client.getIfPresent(.secrets, namespace: configuration.namespace, name: configuration.peersSecretName),
           let secret = SecretObject(json: peers) {
            secrets.append(secret)
        }
        let owned = try await client.list(.secrets, namespace: configuration.istioNamespace,
                                          labelSelector: "\(ControllerLabels.managedBy)=\(ControllerLabels.managedByValue)")
        for item in owned.items {
            guard let secret = SecretObject(json: item),
                  !secrets.contains(where: { $0.namespace == secret.namespace && $0.name == secret.name }) else { continue }
            secrets.append(secret)
        }
        var configMaps: [ConfigMapObject] = []
        if let mesh = try await client.getIfPresent(.configMaps, namespace: configuration.istioNamespace,
                                                    name: configuration.meshNetworksConfigMapName),
           let configMap = ConfigMapObject(json: mesh) {
            configMaps.append(configMap)
        }
        return ObservedState(multiclusters: multiclusters, secrets: secrets, configMaps: configMaps)
    }

    /// Fetches public then private metadata for each object that is due.
    func fetchDue(_ multiclusters: [IstioMulticluster], local: LocalIdentity) async -> [String: PeerFetch] {
        let schedule = configuration.schedule
        let names = Set(multiclusters.map(\.name))
        let states = state.withLock { s in
            s.schedule = s.schedule.filter { names.contains($0.key) }
            return s.schedule
        }
        var fetches: [String: PeerFetch] = [:]
        for multicluster in multiclusters {
            guard case .success(let spec) = multicluster.spec else { continue }
            let now = monotonicNow()
            guard schedule.isDue(states[multicluster.name], generation: multicluster.generation, now: now) else { continue }
            let fetch = await fetcher.fetchBoth(spec, local: local, now: Self.unixNow)
            fetches[multicluster.name] = fetch
            record(fetch, peer: multicluster.name, endpoint: spec.endpoint.description)
            let success: Bool
            if case .fetched = fetch.publicMetadata, case .fetched = fetch.privateMetadata { success = true } else { success = false }
            let next = schedule.record(success: success, generation: multicluster.generation, previous: states[multicluster.name],
                                       now: monotonicNow(), random: Double.random(in: 0..<1))
            state.withLock { $0.schedule[multicluster.name] = next }
        }
        return fetches
    }

    /// Whether the peer's API answers `GET /version` through its proxy with
    /// the remote secret's kubeconfig, as istiod would call it.
    func probePeerAPI(_ remoteSecret: SecretObject?) async -> Bool {
        guard let bytes = remoteSecret?.data.values.first,
              let kubeconfig = RemoteKubeconfig(yaml: String(decoding: bytes, as: UTF8.self)) else { return false }
        let configuration = KubeClientConfiguration(
            server: kubeconfig.server, certificateAuthorityPEM: kubeconfig.caPEM.map { Array($0.utf8) },
            insecureSkipTLSVerify: kubeconfig.insecureSkipTLSVerify, credentials: .bearerToken(kubeconfig.token),
            userAgent: "isthmus-controller", requestTimeout: .seconds(5))
        guard let client = try? KubeClient(configuration: configuration) else { return false }
        return (try? await client.request(method: "GET", path: "/version")) != nil
    }

    private func record(_ fetch: PeerFetch, peer: String, endpoint: String) {
        func one<D>(_ result: FetchResult<D>?, _ document: String) {
            switch result {
            case .fetched(_, let at)?:
                metrics.recordSuccess(peer: peer, document: document, at: at)
            case .failed(let failure, _)?:
                metrics.increment(ControllerMetrics.metadataFetchErrors,
                                  ["peer": peer, "endpoint": endpoint, "document": document, "reason": failure.reason])
                logger.warning("\(peer): \(document) metadata from \(endpoint): \(failure)",
                               metadata: ["peer": "\(peer)", "document": "\(document)", "reason": "\(failure.reason)"])
            case nil:
                break
            }
        }
        one(fetch.publicMetadata, "public")
        one(fetch.privateMetadata, "private")
    }

    func apply(_ action: ReconcileAction) async throws {
        let (verb, kind) = Self.labels(action)
        do {
            switch action {
            case .createSecret(let secret):
                _ = try await client.create(.secrets, namespace: secret.namespace, object: secret.json, fieldManager: Self.fieldManager)
            case .updateSecret(let secret):
                _ = try await client.update(.secrets, namespace: secret.namespace, object: secret.json, fieldManager: Self.fieldManager)
            case .deleteSecret(let namespace, let name):
                do { try await client.delete(.secrets, namespace: namespace, name: name) } catch where error.isNotFound {}
            case .createConfigMap(let configMap):
                _ = try await client.create(.configMaps, namespace: configMap.namespace, object: configMap.json,
                                            fieldManager: Self.fieldManager)
            case .updateConfigMap(let configMap):
                _ = try await client.update(.configMaps, namespace: configMap.namespace, object: configMap.json,
                                            fieldManager: Self.fieldManager)
            case .patchStatus(let name, let status):
                _ = try await client.patchStatus(.istioMulticlusters, name: name, .merge(.object([("status", status)])),
                                                 fieldManager: Self.fieldManager)
            }
            metrics.increment(ControllerMetrics.writes, ["action": verb, "kind": kind])
        } catch {
            metrics.increment(ControllerMetrics.writeErrors, ["kind": kind])
            throw error
        }
    }

    static func labels(_ action: ReconcileAction) -> (action: String, kind: String) {
        switch action {
        case .createSecret: ("create", "Secret")
        case .updateSecret: ("update", "Secret")
        case .deleteSecret: ("delete", "Secret")
        case .createConfigMap: ("create", "ConfigMap")
        case .updateConfigMap: ("update", "ConfigMap")
        case .patchStatus: ("patchStatus", "IstioMulticluster")
        }
    }

    /// `update Secret istio-system/istio-remote-secret-b`: names only, never data.
    static func describe(_ action: ReconcileAction) -> String {
        let (verb, kind) = labels(action)
        switch action {
        case .createSecret(let s), .updateSecret(let s): return "\(verb) \(kind) \(s.namespace)/\(s.name)"
        case .deleteSecret(let namespace, let name): return "\(verb) \(kind) \(namespace)/\(name)"
        case .createConfigMap(let c), .updateConfigMap(let c): return "\(verb) \(kind) \(c.namespace)/\(c.name)"
        case .patchStatus(let name, _): return "\(verb) \(kind) \(name)"
        }
    }

    @Sendable static func unixNow() -> Int64 { Int64(Date().timeIntervalSince1970) }

    private func monotonicNow() -> Duration { ContinuousClock.now - start }
}

/// Wakes the loop early: a signal while nobody waits is kept for the next wait.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.pending = true
            return nil
        }
        waiter?.resume()
    }

    /// Returns at the first signal, after `timeout`, or on cancellation.
    func wait(upTo timeout: Duration) async {
        let timer = Task { [self] in
            do {
                try await Task.sleep(for: timeout)
                signal()
            } catch {}  // cancelled: the wait already ended
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if s.pending {
                        s.pending = false
                        return true
                    }
                    s.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
        timer.cancel()
    }
}
