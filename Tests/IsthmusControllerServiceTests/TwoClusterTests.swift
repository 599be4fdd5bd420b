import Foundation
import IsthmusController
import IsthmusControllerService
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeClient
import IsthmusKubeTypes
import IsthmusMetadata
import IsthmusProxy
import IsthmusTestSupport
import IsthmusTrust
import Testing

let repositoryPolicies: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/IsthmusControllerServiceTests/TwoClusterTests.swift
    return parts.joined(separator: "/") + "/policies"
}()

/// Cluster A as a peer sees it: its API server (seeded with a Service),
/// the proxy in front of it, and its metadata service over plain HTTP on
/// loopback. A's trusted peers file is written by the test, standing in for
/// A's own controller (which would write it from B's public metadata).
final class PeerCluster: @unchecked Sendable {
    static let uuid = "aaaaaaaa-0000-4000-8000-00000000000a"
    let apiserver: FakeAPIServer
    let proxy: ProxyServer
    /// Replaced by ``restartMetadata()``; used from the test's task only.
    private(set) var metadata: MetadataService
    let metadataConfiguration: MetadataServiceConfiguration
    let directory: URL

    init(apiserver: FakeAPIServer, proxy: ProxyServer, metadata: MetadataService,
         metadataConfiguration: MetadataServiceConfiguration, directory: URL) {
        self.apiserver = apiserver
        self.proxy = proxy
        self.metadata = metadata
        self.metadataConfiguration = metadataConfiguration
        self.directory = directory
    }

    /// Starts the metadata service again on the port it had (after a stop).
    func restartMetadata() async throws {
        var configuration = metadataConfiguration
        configuration.flags.listen = "127.0.0.1:\(metadata.port)"
        metadata = try await MetadataService.start(configuration)
    }

    /// `trusting`: B's UUID and public key, as A's trusted peers Secret would hold them.
    static func start(trusting peer: TrustedPeer) async throws -> PeerCluster {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-wire-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func write(_ name: String, _ text: String) throws -> String {
            let url = directory.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        let saToken = "proxy-sa-" + UUID().uuidString
        var apiConfiguration = FakeAPIServer.Configuration(tokens: [saToken: "system:serviceaccount:isthmus:proxy"])
        apiConfiguration.threads = 1
        let apiserver = try await FakeAPIServer.start(apiConfiguration)
        try apiserver.create(resource: "namespaces", object: try JSON(parsing: #"{"metadata":{"name":"demo"}}"#))
        try apiserver.create(resource: "services", object: try JSON(parsing: """
            {"metadata":{"name":"web-in-a","namespace":"demo"},"spec":{"ports":[{"name":"http","port":80}]}}
            """))

        let key = SigningKeyPair()
        let rootCA = try ServingCertificates.generate(commonName: "istio-root-a").caCertificatePEM
        let peersFile = try write("peers.json", try TrustedPeers([peer]).encodedJSONString())
        var upstream = UpstreamConfiguration(url: apiserver.url, caCertificatePEM: apiserver.caCertificatePEM ?? "",
                                             tokenFile: try write("sa.token", saToken))
        upstream.connectTimeout = .seconds(5)
        var proxyConfiguration = ProxyConfiguration(upstream: upstream, peersFile: peersFile, policyDirectory: repositoryPolicies,
                                                    localClusterUUID: uuid)
        proxyConfiguration.host = "127.0.0.1"
        proxyConfiguration.port = 0
        proxyConfiguration.threads = 1
        let proxy = try await ProxyServer.start(proxyConfiguration)

        var flags = MetadataSettings()
        flags.clusterUUID = uuid
        flags.keyFile = try write("key.pem", key.pemRepresentation)
        flags.rootCAFile = try write("root-cert.pem", rootCA)
        flags.peersFile = peersFile
        flags.apiHost = "127.0.0.1:\(proxy.port)"
        flags.networkName = "network-a"
        flags.ingressGateways = [IngressGateway(address: "127.0.0.1", port: 15443)]
        flags.clusterDomain = "cluster.local"
        flags.podSubnetCIDRs = ["10.111.0.0/16"]
        flags.serviceSubnetCIDRs = ["10.222.0.0/16"]
        flags.listen = "127.0.0.1:0"
        flags.plainHTTP = true
        var metadataConfiguration = MetadataServiceConfiguration(flags: flags)
        metadataConfiguration.threads = 1
        let metadata = try await MetadataService.start(metadataConfiguration)
        return PeerCluster(apiserver: apiserver, proxy: proxy, metadata: metadata, metadataConfiguration: metadataConfiguration,
                           directory: directory)
    }

    var metadataEndpoint: String { "http://127.0.0.1:\(metadata.port)/metadata" }

    func stop() async {
        try? await metadata.shutdown()
        try? await proxy.shutdown(grace: .seconds(1))
        try? await apiserver.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Cluster B: an embedded API server with the IstioMulticluster CRD, and
/// the controller under test pointed at it.
struct LocalCluster {
    static let uuid = "bbbbbbbb-0000-4000-8000-00000000000b"
    static let token = "controller-b-token"
    static let namespace = "isthmus-system"
    let apiserver: FakeAPIServer
    let service: ControllerService

    static func start(schedule: RefetchSchedule = RefetchSchedule()) async throws -> LocalCluster {
        var apiConfiguration = FakeAPIServer.Configuration(tokens: [token: "system:serviceaccount:isthmus-system:controller"])
        apiConfiguration.threads = 1
        let apiserver = try await FakeAPIServer.start(apiConfiguration)
        try apiserver.installIstioMulticlusterCRD()
        for namespace in [namespace, "istio-system"] {
            try apiserver.create(resource: "namespaces", object: .object([("metadata", .object([("name", .string(namespace))]))]))
        }
        let kube = KubeClientConfiguration(server: apiserver.url, certificateAuthorityPEM: Array((apiserver.caCertificatePEM ?? "").utf8),
                                           credentials: .bearerToken(token), namespace: namespace)
        var configuration = ControllerServiceConfiguration(kube: kube, clusterUUID: uuid, namespace: namespace)
        configuration.networking = try ClusterNetworking(clusterDomain: "cluster.local", podSubnetCIDR: "10.112.0.0/16",
                                                         serviceSubnetCIDR: "10.223.0.0/16")
        configuration.networkName = "network-b"
        // Short, so the test sees several loop rounds; fetches stay on their 60 s period.
        configuration.resyncInterval = .milliseconds(300)
        configuration.schedule = schedule
        let service = try ControllerService(configuration: configuration)
        return LocalCluster(apiserver: apiserver, service: service)
    }

    /// Another controller (a replica) for the same cluster.
    func replica(identity: String) throws -> ControllerService {
        var configuration = service.configuration
        configuration.leaderElection = LeaderElector.Configuration(namespace: Self.namespace, name: "isthmus-controller", identity: identity)
        return try ControllerService(configuration: configuration)
    }

    func secret(_ namespace: String, _ name: String) -> SecretObject? {
        (try? apiserver.get(resource: "secrets", namespace: namespace, name: name)).flatMap(SecretObject.init(json:))
    }

    func multicluster(_ name: String) -> JSON? {
        try? apiserver.get(resource: "istiomulticlusters", group: "deckhouse.io", name: name)
    }
}


@Suite(.serialized) struct TwoClusterTests {
    /// B with its key, and A trusting that key (as A's controller would once
    /// it read B's public metadata).
    static func startPair(schedule: RefetchSchedule = RefetchSchedule()) async throws -> (LocalCluster, PeerCluster) {
        let b = try await LocalCluster.start(schedule: schedule)
        // The cluster key first: A must trust it before B's private fetch.
        let identity = try await b.service.ensureIdentity()
        let keySecret = try #require(b.secret(LocalCluster.namespace, ClusterKeySecret.defaultName))
        #expect(keySecret.data[ClusterKeySecret.privateKeyField] != nil)
        let bPublic = try PeerPublicKey(pem: String(decoding: try #require(keySecret.data[ClusterKeySecret.publicKeyField]), as: UTF8.self))
        #expect(bPublic == identity.signingKey.publicKey)
        let bRootCA = try ServingCertificates.generate(commonName: "istio-root-b").caCertificatePEM
        let a = try await PeerCluster.start(trusting: try TrustedPeer(clusterUUID: LocalCluster.uuid, keys: [bPublic], rootCA: bRootCA))
        return (b, a)
    }

    /// `cluster-a` on B, pointing at A's metadata service, with A's proxy CA.
    static func createMulticluster(on b: LocalCluster, for a: PeerCluster) throws {
        let multicluster: JSON = .object([
            ("apiVersion", .string("deckhouse.io/v1alpha1")), ("kind", .string("IstioMulticluster")),
            ("metadata", .object([("name", .string("cluster-a"))])),
            ("spec", .object([("metadata", .object([
                ("endpoint", .string(a.metadataEndpoint)), ("ca", .string(a.proxy.certificates.caCertificatePEM)),
            ]))])),
        ])
        try b.apiserver.create(resource: "istiomulticlusters", group: "deckhouse.io", object: multicluster)
    }

    /// `type` -> (status, reason) of cluster-a's conditions.
    static func conditions(_ b: LocalCluster) -> [String: (status: String, reason: String)] {
        var out: [String: (status: String, reason: String)] = [:]
        for condition in b.multicluster("cluster-a")?.value(at: ["status", "conditions"])?.arrayValue ?? [] {
            guard let type = condition["type"]?.stringValue else { continue }
            out[type] = (condition["status"]?.stringValue ?? "", condition["reason"]?.stringValue ?? "")
        }
        return out
    }

    /// B's controller pairs with A through A's metadata service; the remote
    /// secret it writes reads A's API through A's proxy with real kubectl.
    @Test("B pairs with A: trust, a remote secret kubectl reads A through A's proxy with, all conditions True; settled rounds write nothing; delete unpairs")
    func controllerPairsWithAPeerAndUnpairsOnDelete() async throws {
        let (b, a) = try await Self.startPair()
        let admin = try await AdminServer.start(host: "127.0.0.1", port: 0, ready: { b.service.isReady }, metrics: b.service.exporter)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-wire-kubectl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let loop = Task { try await b.service.run() }
        defer { loop.cancel() }
        try Self.createMulticluster(on: b, for: a)

        await eventually("cluster-a Ready=True", deadline: .seconds(90)) {
            let conditions = b.multicluster("cluster-a")?.value(at: ["status", "conditions"])?.arrayValue ?? []
            return conditions.count == 4 && conditions.allSatisfy { $0["status"]?.stringValue == "True" }
        }
        let status = try #require(b.multicluster("cluster-a")?["status"])
        #expect(Set((status["conditions"]?.arrayValue ?? []).compactMap { $0["type"]?.stringValue })
                == ["PublicMetadataFetched", "PrivateMetadataFetched", "RequirementsMet", "Ready"])
        #expect(status.value(at: ["metadataCache", "public", "clusterUUID"])?.stringValue == PeerCluster.uuid)
        #expect(status.value(at: ["metadataCache", "private", "apiHost"])?.stringValue == "127.0.0.1:\(a.proxy.port)")

        // A is trusted in B's peers Secret.
        let peersSecret = try #require(b.secret(LocalCluster.namespace, "isthmus-trusted-peers"))
        let peers = try TrustedPeers(json: peersSecret.data["peers.json"] ?? [])
        #expect(peers[PeerCluster.uuid] != nil)

        // The remote secret's kubeconfig reads A's Services through A's proxy.
        let remote = try #require(b.secret("istio-system", "istio-remote-secret-cluster-a"))
        #expect(remote.labels["istio/multiCluster"] == "true")
        #expect(remote.annotations["networking.istio.io/cluster"] == PeerCluster.uuid)
        let kubeconfig = directory.appendingPathComponent("b-to-a.kubeconfig").path
        try Data(try #require(remote.data[PeerCluster.uuid])).write(to: URL(fileURLWithPath: kubeconfig))
        let cache = directory.appendingPathComponent("cache").path
        let list = try await ChildProcess.run(Executables.kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", cache, "get", "svc", "-A"])
        #expect(list.status == 0, "\(list)")
        #expect(list.stdout.contains("web-in-a"), "\(list)")
        let delete = try await ChildProcess.run(Executables.kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", cache,
                                                               "delete", "svc", "web-in-a", "-n", "demo"])
        #expect(delete.status != 0, "\(delete)")
        #expect((try? a.apiserver.get(resource: "services", namespace: "demo", name: "web-in-a")) != nil)

        // Admin port: ready, and the gauges say the peer is ready and trusted.
        let metrics = try await ChildProcess.run(Executables.curl, ["-sS", "--fail", "http://127.0.0.1:\(admin.port)/metrics"])
        #expect(metrics.stdout.contains("isthmus_controller_peer_ready{peer=\"cluster-a\"} 1"), "\(metrics)")
        #expect(metrics.stdout.contains("isthmus_controller_trusted_peers 1"), "\(metrics)")
        #expect(metrics.stdout.contains("isthmus_controller_peer_api_up{peer=\"cluster-a\"} 1"), "\(metrics)")
        let ready = try await ChildProcess.run(Executables.curl, ["-sS", "--fail", "http://127.0.0.1:\(admin.port)/readyz"])
        #expect(ready.status == 0, "\(ready)")

        // Settled: further rounds write nothing.
        b.apiserver.clearRecentRequests()
        let roundsBefore = b.service.roundsCompleted
        await eventually("two more rounds", deadline: .seconds(90)) { b.service.roundsCompleted >= roundsBefore + 2 }
        let writes = b.apiserver.recentRequests.filter { ["POST", "PUT", "PATCH", "DELETE"].contains($0.method) && !$0.uri.contains("/leases") }
        #expect(writes.isEmpty, "\(writes.map { "\($0.method) \($0.uri)" })")

        // Deleting the IstioMulticluster removes the peer and its remote secret.
        _ = try b.apiserver.delete(resource: "istiomulticlusters", group: "deckhouse.io", name: "cluster-a")
        await eventually("remote secret deleted and peer untrusted", deadline: .seconds(90)) {
            guard b.secret("istio-system", "istio-remote-secret-cluster-a") == nil,
                  let secret = b.secret(LocalCluster.namespace, "isthmus-trusted-peers"),
                  let peers = try? TrustedPeers(json: secret.data["peers.json"] ?? []) else { return false }
            return peers[PeerCluster.uuid] == nil
        }

        loop.cancel()
        _ = await loop.result
        try? await admin.close()
        await a.stop()
        try? await b.apiserver.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    /// A peer whose metadata endpoint goes down keeps its trust and remote
    /// secret; the status and the fetch error counter say why; it recovers.
    @Test("a peer whose metadata endpoint is down keeps its trust and remote secret, the status and a counter say why, and it recovers")
    func peerEndpointDownKeepsTrustAndRecovers() async throws {
        let schedule = RefetchSchedule(period: .seconds(1), initialBackoff: .milliseconds(500), maximumBackoff: .seconds(1))
        let (b, a) = try await Self.startPair(schedule: schedule)
        let loop = Task { try await b.service.run() }
        defer { loop.cancel() }
        try Self.createMulticluster(on: b, for: a)
        await eventually("cluster-a Ready=True", deadline: .seconds(90)) { Self.conditions(b)["Ready"]?.status == "True" }
        let remoteBefore = try #require(b.secret("istio-system", "istio-remote-secret-cluster-a"))

        try await a.metadata.shutdown()
        await eventually("PublicMetadataFetched=False EndpointUnreachable", deadline: .seconds(90)) {
            Self.conditions(b)["PublicMetadataFetched"].map { $0 == ("False", "EndpointUnreachable") } ?? false
        }
        #expect(Self.conditions(b)["Ready"].map { $0 == ("False", "MetadataStale") } ?? false, "\(Self.conditions(b))")
        let peers = try TrustedPeers(json: try #require(b.secret(LocalCluster.namespace, "isthmus-trusted-peers")?.data["peers.json"]))
        #expect(peers[PeerCluster.uuid] != nil, "trust was dropped while the endpoint is down")
        #expect(b.secret("istio-system", "istio-remote-secret-cluster-a")?.data == remoteBefore.data)
        let page = String(decoding: b.service.exporter.exposition(), as: UTF8.self)
        let series = #"\#(ControllerMetrics.metadataFetchErrors){document="public",endpoint="\#(a.metadataEndpoint)",peer="cluster-a",reason="EndpointUnreachable"} "#
        let errors = page.split(separator: "\n").first { $0.hasPrefix(series) }.flatMap { Double($0.dropFirst(series.count)) }
        #expect((errors ?? 0) >= 1, "\(page)")

        try await a.restartMetadata()
        await eventually("cluster-a Ready=True again", deadline: .seconds(90)) { Self.conditions(b)["Ready"]?.status == "True" }
        #expect(Self.conditions(b)["PublicMetadataFetched"]?.reason == "Fetched")

        loop.cancel()
        _ = await loop.result
        await a.stop()
        try? await b.apiserver.shutdown()
    }

    /// Two replicas with leader election: only the Lease holder reconciles;
    /// when it stops, the other takes over.
    @Test("with leader election only the Lease holder reconciles, and the standby takes over when it stops")
    func onlyTheLeaderReconciles() async throws {
        let (b, a) = try await Self.startPair()
        try Self.createMulticluster(on: b, for: a)
        // The embedded API server does not build in Lease; register it as the kube client's tests do.
        try b.apiserver.create(resource: "customresourcedefinitions", group: "apiextensions.k8s.io", object: try JSON(parsing: """
            {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
             "metadata":{"name":"leases.coordination.k8s.io"},
             "spec":{"group":"coordination.k8s.io","scope":"Namespaced",
               "names":{"plural":"leases","singular":"lease","kind":"Lease","listKind":"LeaseList"},
               "versions":[{"name":"v1","served":true,"storage":true,
                 "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}
            """))
        let first = try b.replica(identity: "replica-1")
        let second = try b.replica(identity: "replica-2")
        let firstLoop = Task { try await first.run() }
        await eventually("replica-1 leads and reconciles", deadline: .seconds(90)) { first.roundsCompleted >= 3 }
        let secondLoop = Task { try await second.run() }
        defer { firstLoop.cancel(); secondLoop.cancel() }
        await eventually("replica-2 stands by, ready", deadline: .seconds(90)) { second.isReady }
        let roundsBefore = first.roundsCompleted
        await eventually("replica-1 keeps reconciling", deadline: .seconds(90)) { first.roundsCompleted >= roundsBefore + 3 }
        #expect(second.roundsCompleted == 0, "a standby replica reconciled")
        let lease = try b.apiserver.get(resource: "leases", group: "coordination.k8s.io", namespace: LocalCluster.namespace,
                                        name: "isthmus-controller")
        #expect(lease.value(at: ["spec", "holderIdentity"])?.stringValue == "replica-1")

        // The leader stops (releasing the Lease): the standby takes over.
        firstLoop.cancel()
        _ = await firstLoop.result
        await eventually("replica-2 takes over", deadline: .seconds(90)) { second.roundsCompleted >= 1 }
        await eventually("cluster-a Ready=True under replica-2", deadline: .seconds(90)) { Self.conditions(b)["Ready"]?.status == "True" }

        secondLoop.cancel()
        _ = await secondLoop.result
        await a.stop()
        try? await b.apiserver.shutdown()
    }
}
