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
/// root CA ConfigMap, and on the ingressgateway Service with the nodes and
/// the pods in its namespace. Their caches answer ``rootCA()`` and
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

    private let configMaps: Informer?
    private let services: Informer?
    private let pods: Informer?
    private let nodes: Informer?
    private let runner: Task<Void, Never>
    /// Failure counts per informer already reported by ``newProblems()``.
    private let reportedFailures = Mutex<[String: Int]>([:])

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
        self.rootCAConfigMap = rootCAConfigMap
        self.ingressGatewayService = ingressGatewayService
        // By-name field selectors, so RBAC can grant these by resourceNames.
        configMaps = rootCAConfigMap.map {
            Informer(client: client, resource: .configMaps, namespace: $0.namespace, fieldSelector: "metadata.name=\($0.name)")
        }
        services = ingressGatewayService.map {
            Informer(client: client, resource: .services, namespace: $0.namespace, fieldSelector: "metadata.name=\($0.name)")
        }
        // All pods of the namespace: the Service's selector may change, and
        // IngressGatewayDiscovery applies it.
        pods = ingressGatewayService.map { Informer(client: client, resource: .pods, namespace: $0.namespace) }
        nodes = ingressGatewayService.map { _ in Informer(client: client, resource: .nodes) }
        // Newest-one buffering: a burst of changes is one rebuild.
        let (changes, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.changes = changes
        let informers = [configMaps, services, pods, nodes].compactMap { $0 }
        runner = Task {
            await withTaskGroup(of: Void.self) { group in
                for informer in informers {
                    group.addTask { await informer.run() }
                    group.addTask {
                        for await event in informer.events where event != .synced {
                            continuation.yield()
                        }
                    }
                }
            }
            continuation.finish()
        }
    }

    private var informers: [(label: String, informer: Informer)] {
        var out: [(String, Informer)] = []
        if let configMaps, let rootCAConfigMap { out.append(("configmap \(rootCAConfigMap)", configMaps)) }
        if let services, let ingressGatewayService { out.append(("service \(ingressGatewayService)", services)) }
        if let pods, let ingressGatewayService { out.append(("pods in \(ingressGatewayService.namespace)", pods)) }
        if let nodes { out.append(("nodes", nodes)) }
        return out
    }

    /// True when every informer has its first list before `timeout`.
    private func waitUntilSynced(timeout: Duration) async -> Bool {
        let informers = informers.map(\.informer)
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for informer in informers { await informer.waitUntilSynced() }
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
        runner.cancel()
        await runner.value
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
        guard let services, let pods, let nodes, let reference = ingressGatewayService else {
            throw GatewayDiscoveryError("no ingress gateway service configured")
        }
        guard let service = services.get(namespace: reference.namespace, name: reference.name) else {
            throw GatewayDiscoveryError("service \(reference) not found")
        }
        return GatewayObjects(service: service, nodes: nodes.list(), pods: pods.list())
    }

    /// Gateways discovered from the cached objects.
    public var gatewaySource: DiscoveredGateways {
        DiscoveredGateways { try self.gatewayObjects() }
    }

    /// One line per informer that failed since the last call, with its last
    /// error: the API is unreachable or refuses, and the caches are stale.
    public func newProblems() -> [String] {
        let current = informers.map { ($0.label, $0.informer.statistics) }
        return reportedFailures.withLock { reported in
            current.compactMap { label, statistics in
                // Expiry (410) is routine, the informer re-lists; it is not counted here.
                guard statistics.failures > reported[label, default: 0] else { return nil }
                reported[label] = statistics.failures
                return "kubernetes API: \(label): \(statistics.lastError ?? "failed")"
            }
        }
    }
}
