import Foundation
import IsthmusKubeClient
import IsthmusKubeTypes
import Synchronization

/// `NAMESPACE/NAME`, as the `--root-ca-configmap` and
/// `--ingress-gateway-service` flags name an object.
public struct ObjectReference: Sendable, Hashable, CustomStringConvertible {
    public var namespace: String
    public var name: String

    public init(namespace: String, name: String) {
        self.namespace = namespace
        self.name = name
    }

    /// Nil unless the text is two non-empty parts around one `/`.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.init(namespace: String(parts[0]), name: String(parts[1]))
    }

    public var description: String { "\(namespace)/\(name)" }
}

/// The metadata sources read from the Kubernetes API: informers on Istio's
/// root CA ConfigMap, and on the ingressgateway Service (with, for a NodePort
/// one, the nodes and the pods in its namespace). Their caches answer ``rootCA()`` and
/// ``gatewaySource`` without I/O; ``changes`` ticks after any of them
/// changes, so the service rebuilds its documents at once instead of at the
/// next poll. While the API is unreachable the caches keep the last objects
/// seen, so the documents keep the last good root CA and gateways;
/// ``newProblems()`` reports the failures for the log.
public final class KubeMetadataSources: Sendable {
    /// The ConfigMap key Istio writes its root certificate under.
    public static let rootCAKey = "root-cert.pem"

    public let rootCAConfigMap: ObjectReference?
    public let ingressGatewayService: ObjectReference?
    /// Ticks (coalesced) when a watched object changes; ends at ``stop()``.
    public let changes: AsyncStream<Void>

    private let client: KubeClient
    private let configMaps: Informer?
    private let services: Informer?
    /// Pods and nodes, watched only while the Service is of type NodePort:
    /// a LoadBalancer needs neither, and a large cluster's nodes take a lot of memory.
    private let nodePortWatch = Mutex<NodePortWatch?>(nil)
    private let continuation: AsyncStream<Void>.Continuation
    private let runner = Mutex<Task<Void, Never>?>(nil)
    /// Failure counts per informer already reported by ``newProblems()``.
    private let reportedFailures = Mutex<[ObjectIdentifier: Int]>([:])

    /// Resolves the client configuration (`kubeconfig`, else kubectl's
    /// order), starts the informers and waits for their first lists. Throws
    /// a ``MetadataSourceError`` naming the setting when the configuration
    /// is unusable or the lists do not succeed within `syncTimeout`.
    public static func start(kubeconfig: String?, rootCAConfigMap: ObjectReference?,
                             ingressGatewayService: ObjectReference?,
                             syncTimeout: Duration = .seconds(30)) async throws(MetadataSourceError) -> KubeMetadataSources {
        let client: KubeClient
        do {
            client = try KubeClient(configuration: .resolve(kubeconfig: kubeconfig))
        } catch {
            throw MetadataSourceError(field: "kubeconfig", problem: error.description)
        }
        return try await start(client: client, rootCAConfigMap: rootCAConfigMap,
                               ingressGatewayService: ingressGatewayService, syncTimeout: syncTimeout)
    }

    /// As above, with a client already made.
    public static func start(client: KubeClient, rootCAConfigMap: ObjectReference?, ingressGatewayService: ObjectReference?,
                             syncTimeout: Duration = .seconds(30)) async throws(MetadataSourceError) -> KubeMetadataSources {
        let sources = KubeMetadataSources(client: client, rootCAConfigMap: rootCAConfigMap,
                                          ingressGatewayService: ingressGatewayService)
        sources.run()
        let synced = await sources.waitUntilSynced(timeout: syncTimeout)
        if !synced {
            let unsynced = sources.informers.filter { !$0.informer.hasSynced }
            await sources.stop()
            let detail = unsynced.map { "\($0.label): \($0.informer.statistics.lastError ?? "no response yet")" }
            throw MetadataSourceError(
                field: "kubeconfig",
                problem: "cannot list from the Kubernetes API within \(syncTimeout.components.seconds)s: \(detail.joined(separator: "; "))")
        }
        return sources
    }

    private init(client: KubeClient, rootCAConfigMap: ObjectReference?, ingressGatewayService: ObjectReference?) {
        self.client = client
        self.rootCAConfigMap = rootCAConfigMap
        self.ingressGatewayService = ingressGatewayService
        // By-name field selectors, so RBAC can grant these by resourceNames.
        configMaps = rootCAConfigMap.map {
            Informer(client: client, resource: .configMaps, namespace: $0.namespace, fieldSelector: "metadata.name=\($0.name)")
        }
        services = ingressGatewayService.map {
            Informer(client: client, resource: .services, namespace: $0.namespace, fieldSelector: "metadata.name=\($0.name)")
        }
        // Newest-one buffering: a burst of changes is one rebuild.
        (changes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    private func run() {
        let task = Task {
            await withTaskGroup(of: Void.self) { group in
                if let configMaps {
                    group.addTask { await configMaps.run() }
                    group.addTask { await self.forward(configMaps.events) }
                }
                if let services {
                    group.addTask { await services.run() }
                    group.addTask {
                        for await event in services.events {
                            self.followServiceType()
                            if event != .synced { self.continuation.yield() }
                        }
                    }
                }
            }
            continuation.finish()
        }
        runner.withLock { $0 = task }
    }

    /// Ticks ``changes`` for every change (not for the first list's end).
    private func forward(_ events: AsyncStream<InformerEvent>) async {
        for await event in events where event != .synced {
            continuation.yield()
        }
    }

    /// Starts the pod and node informers when the cached Service is of type
    /// NodePort, and stops them (freeing their caches) when it no longer is.
    @discardableResult
    private func followServiceType() -> NodePortWatch? {
        guard let services, let reference = ingressGatewayService else { return nil }
        let type = services.get(namespace: reference.namespace, name: reference.name)?.value(at: ["spec", "type"])?.stringValue
        return nodePortWatch.withLock { watch in
            if type == "NodePort", watch == nil {
                // All pods of the namespace: the Service's selector may change,
                // and IngressGatewayDiscovery applies it.
                let pods = Informer(client: client, resource: .pods, namespace: reference.namespace)
                let nodes = Informer(client: client, resource: .nodes)
                let task = Task {
                    await withTaskGroup(of: Void.self) { group in
                        for informer in [pods, nodes] {
                            group.addTask { await informer.run() }
                            group.addTask { await self.forward(informer.events) }
                        }
                    }
                }
                watch = NodePortWatch(pods: pods, nodes: nodes, task: task)
            } else if type != "NodePort", let current = watch {
                current.task.cancel()
                watch = nil
            }
            return watch
        }
    }

    private var informers: [(label: String, informer: Informer)] {
        var out: [(String, Informer)] = []
        if let configMaps, let rootCAConfigMap { out.append(("configmap \(rootCAConfigMap)", configMaps)) }
        if let services, let ingressGatewayService { out.append(("service \(ingressGatewayService)", services)) }
        if let watch = nodePortWatch.withLock({ $0 }), let ingressGatewayService {
            out.append(("pods in \(ingressGatewayService.namespace)", watch.pods))
            out.append(("nodes", watch.nodes))
        }
        return out
    }

    /// True when every informer has its first list before `timeout`: the
    /// ConfigMap and the Service, then, for a NodePort Service, pods and nodes.
    private func waitUntilSynced(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for informer in [self.configMaps, self.services].compactMap({ $0 }) { await informer.waitUntilSynced() }
                if let watch = self.followServiceType() {
                    await watch.pods.waitUntilSynced()
                    await watch.nodes.waitUntilSynced()
                }
                return !Task.isCancelled
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// Stops the informers (their caches stay readable).
    public func stop() async {
        let task = runner.withLock { $0 }
        task?.cancel()
        await task?.value
        let watch = nodePortWatch.withLock { $0 }
        watch?.task.cancel()
        await watch?.task.value
        continuation.finish()
    }

    // MARK: Reading the caches

    /// The root CA PEM from the cached ConfigMap.
    public func rootCA() throws(MetadataSourceError) -> String {
        guard let configMaps, let reference = rootCAConfigMap else {
            throw MetadataSourceError(field: "rootCAConfigMap", problem: "must be set")
        }
        guard let object = configMaps.get(namespace: reference.namespace, name: reference.name) else {
            throw MetadataSourceError(field: "rootCAConfigMap", problem: "configmap \(reference) not found")
        }
        guard let pem = object.value(at: ["data", Self.rootCAKey])?.stringValue, !pem.isEmpty else {
            throw MetadataSourceError(field: "rootCAConfigMap", problem: "configmap \(reference) has no key \(Self.rootCAKey)")
        }
        return pem
    }

    /// The cached objects ``IngressGatewayDiscovery`` decides from.
    public func gatewayObjects() throws(GatewayDiscoveryError) -> GatewayObjects {
        guard let services, let reference = ingressGatewayService else {
            throw GatewayDiscoveryError("no ingress gateway service configured")
        }
        guard let service = services.get(namespace: reference.namespace, name: reference.name) else {
            throw GatewayDiscoveryError("service \(reference) not found")
        }
        // Pods and nodes are watched only for a NodePort Service, the only kind that needs them.
        guard let watch = nodePortWatch.withLock({ $0 }) else { return GatewayObjects(service: service) }
        return GatewayObjects(service: service, nodes: watch.nodes.list(), pods: watch.pods.list())
    }

    /// Gateways discovered from the cached objects.
    public var gatewaySource: DiscoveredGateways {
        DiscoveredGateways { try self.gatewayObjects() }
    }

    /// One line per informer that failed since the last call, with its last
    /// error: the API is unreachable or refuses, and the caches are stale.
    public func newProblems() -> [String] {
        let current = informers.map { ($0.label, ObjectIdentifier($0.informer), $0.informer.statistics) }
        return reportedFailures.withLock { reported in
            current.compactMap { label, id, statistics in
                // Expiry (410) is routine, the informer re-lists; it is not counted here.
                guard statistics.failures > reported[id, default: 0] else { return nil }
                reported[id] = statistics.failures
                return "kubernetes API: \(label): \(statistics.lastError ?? "failed")"
            }
        }
    }
}

/// The pod and node informers of a NodePort Service, and the task running them.
private final class NodePortWatch: Sendable {
    let pods: Informer
    let nodes: Informer
    let task: Task<Void, Never>

    init(pods: Informer, nodes: Informer, task: Task<Void, Never>) {
        self.pods = pods
        self.nodes = nodes
        self.task = task
    }
}
