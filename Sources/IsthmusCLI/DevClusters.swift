import Foundation
import IsthmusController
import IsthmusControllerService
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeClient
import IsthmusKubeTypes
import IsthmusMetadata
import IsthmusProxy
import IsthmusTrust
import Logging

/// One cluster of `isthmus dev --clusters 2`: an embedded API server, the
/// proxy in front of it, its metadata service and its controller, on
/// loopback, with files under DIR/cluster-NAME/.
struct DevCluster {
    static let controllerNamespace = "isthmus-system"
    static let peersSecret = "isthmus-trusted-peers"

    let name: String
    let uuid: String
    let apiserver: FakeAPIServer
    let controller: ControllerService
    let proxy: ProxyServer
    let metadata: MetadataService
    let peersFile: String
    /// A kubeconfig for the embedded API server itself, as its owner.
    let adminKubeconfig: String

    var metadataEndpoint: String { "http://127.0.0.1:\(metadata.port)/metadata" }

    /// Starts everything but the controller's loop. Its key Secret is made
    /// first, so the metadata service publishes the key the controller signs with.
    static func start(name: String, directory: String, policies: String) async throws -> DevCluster {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func write(_ file: String, _ text: String, secret: Bool = false) throws -> String {
            let path = directory + "/" + file
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            if secret { try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path) }
            return path
        }
        let uuid = UUID().uuidString.lowercased()
        let proxyToken = "dev-proxy-" + UUID().uuidString.lowercased()
        let controllerToken = "dev-controller-" + UUID().uuidString.lowercased()
        let adminToken = "dev-admin-" + UUID().uuidString.lowercased()
        var apiConfiguration = FakeAPIServer.Configuration(tokens: [
            proxyToken: "system:serviceaccount:isthmus:proxy", controllerToken: "system:serviceaccount:isthmus:controller",
            adminToken: "dev-admin",
        ])
        apiConfiguration.threads = 1
        let apiserver = try await FakeAPIServer.start(apiConfiguration)
        try DevCommand.seed(apiserver)
        try apiserver.create(resource: "namespaces", object: .object([("metadata", .object([("name", .string(controllerNamespace))]))]))
        // A Service only this cluster has, so a peer's kubectl shows which cluster it reads.
        try apiserver.create(resource: "services", object: try JSON(parsing: """
            {"metadata":{"name":"hello-from-cluster-\(name)","namespace":"demo"},"spec":{"ports":[{"name":"http","port":80}]}}
            """))
        try apiserver.installIstioMulticlusterCRD()
        let adminKubeconfig = try write("admin.kubeconfig", APIServerCommand.kubeconfig(
            server: apiserver.url, caPEM: apiserver.caCertificatePEM, token: adminToken), secret: true)

        let kube = KubeClientConfiguration(server: apiserver.url, certificateAuthorityPEM: Array((apiserver.caCertificatePEM ?? "").utf8),
                                           credentials: .bearerToken(controllerToken), namespace: controllerNamespace)
        var configuration = ControllerServiceConfiguration(kube: kube, clusterUUID: uuid, namespace: controllerNamespace)
        configuration.networkName = "network-\(name)"
        configuration.networking = try ClusterNetworking(
            clusterDomain: "cluster.local", podSubnetCIDR: name == "a" ? "10.111.0.0/16" : "10.112.0.0/16",
            serviceSubnetCIDR: name == "a" ? "10.221.0.0/16" : "10.222.0.0/16")
        // Quick retries: the first private fetch is refused until the peer trusts us.
        configuration.schedule = RefetchSchedule(period: .seconds(30), initialBackoff: .seconds(1), maximumBackoff: .seconds(5))
        configuration.resyncInterval = .seconds(5)
        let controller = try ControllerService(configuration: configuration, logger: devLogger("isthmus.controller", cluster: name))
        let identity = try await controller.ensureIdentity()

        let peersFile = try write("peers.json", TrustedPeers.empty.encodedJSONString())
        var upstream = UpstreamConfiguration(url: apiserver.url, caCertificatePEM: apiserver.caCertificatePEM ?? "",
                                             tokenFile: try write("proxy-sa.token", proxyToken + "\n", secret: true))
        upstream.connectTimeout = .seconds(2)
        var proxyConfiguration = ProxyConfiguration(upstream: upstream, peersFile: peersFile, policyDirectory: policies,
                                                    localClusterUUID: uuid)
        proxyConfiguration.host = "127.0.0.1"
        proxyConfiguration.port = 0
        proxyConfiguration.threads = 1
        proxyConfiguration.reloadInterval = .milliseconds(500)
        proxyConfiguration.logger = devLogger("isthmus.proxy", cluster: name)
        let proxy = try await ProxyServer.start(proxyConfiguration)

        var flags = MetadataSettings()
        flags.clusterUUID = uuid
        flags.keyFile = try write("cluster-public.pem", identity.signingKey.publicKey.pemRepresentation)
        flags.rootCAFile = try write("istio-root-ca.pem", try ServingCertificates.generate(commonName: "istio-root-\(name)").caCertificatePEM)
        flags.peersFile = peersFile
        flags.apiHost = "127.0.0.1:\(proxy.port)"
        flags.networkName = "network-\(name)"
        flags.ingressGateways = [IngressGateway(address: "127.0.0.1", port: name == "a" ? 15443 : 15444)]
        flags.clusterDomain = "cluster.local"
        flags.podSubnetCIDRs = [name == "a" ? "10.111.0.0/16" : "10.112.0.0/16"]
        flags.serviceSubnetCIDRs = [name == "a" ? "10.221.0.0/16" : "10.222.0.0/16"]
        flags.listen = "127.0.0.1:0"
        flags.plainHTTP = true
        var metadataConfiguration = MetadataServiceConfiguration(flags: flags)
        metadataConfiguration.threads = 1
        metadataConfiguration.reloadInterval = .milliseconds(500)
        let metadata = try await MetadataService.start(metadataConfiguration, logger: devLogger("isthmus.metadata", cluster: name))
        return DevCluster(name: name, uuid: uuid, apiserver: apiserver, controller: controller, proxy: proxy, metadata: metadata,
                          peersFile: peersFile, adminKubeconfig: adminKubeconfig)
    }

    /// Points this cluster at `peer` with an IstioMulticluster named `cluster-<peer>`.
    func pair(with peer: DevCluster) throws {
        try apiserver.create(resource: "istiomulticlusters", group: "deckhouse.io", object: .object([
            ("apiVersion", .string(IstioMulticluster.apiVersion)), ("kind", .string(IstioMulticluster.kind)),
            ("metadata", .object([("name", .string("cluster-\(peer.name)"))])),
            ("spec", .object([("metadata", .object([
                ("endpoint", .string(peer.metadataEndpoint)), ("ca", .string(peer.proxy.certificates.caCertificatePEM)),
            ]))])),
        ]))
    }

    /// Copies the controller's trusted peers Secret to the file the proxy and
    /// the metadata service read (in a cluster, a Secret volume does this).
    func syncPeersFile() {
        guard let object = try? apiserver.get(resource: "secrets", namespace: Self.controllerNamespace, name: Self.peersSecret),
              let secret = SecretObject(json: object), let peers = secret.data["peers.json"] else { return }
        if FileManager.default.contents(atPath: peersFile).map(Array.init) == peers { return }
        try? Data(peers).write(to: URL(fileURLWithPath: peersFile), options: .atomic)
    }

    /// Whether the IstioMulticluster `name` has all its conditions True.
    func isReady(_ multicluster: String) -> Bool {
        guard let object = try? apiserver.get(resource: "istiomulticlusters", group: "deckhouse.io", name: multicluster),
              let conditions = object.value(at: ["status", "conditions"])?.arrayValue, !conditions.isEmpty else { return false }
        return conditions.allSatisfy { $0["status"]?.stringValue == "True" }
    }

    /// The kubeconfig in this cluster's remote secret for `peer`.
    func remoteKubeconfig(for peer: DevCluster) -> String? {
        guard let object = try? apiserver.get(resource: "secrets", namespace: "istio-system", name: "istio-remote-secret-cluster-\(peer.name)"),
              let secret = SecretObject(json: object), let bytes = secret.data[peer.uuid] else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    func shutdown() async {
        try? await metadata.shutdown()
        try? await proxy.shutdown(grace: .seconds(1))
        try? await apiserver.shutdown()
    }
}


extension DevCommand {
    /// `isthmus dev --clusters 2`: clusters A and B paired through
    /// IstioMulticluster objects; ends with B's remote secret as a kubeconfig.
    func runTwoClusters(termination: TerminationSignal) async throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let a = try await DevCluster.start(name: "a", directory: dir + "/cluster-a", policies: policies)
        let b: DevCluster
        do { b = try await DevCluster.start(name: "b", directory: dir + "/cluster-b", policies: policies) } catch {
            await a.shutdown()
            throw error
        }
        let clusters = [a, b]
        let work = Task {
            await withTaskGroup(of: Void.self) { group in
                for cluster in clusters {
                    group.addTask {
                        do { try await cluster.controller.run() } catch {
                            devLogger("isthmus.dev", cluster: cluster.name).error("controller stopped: \(error)")
                        }
                    }
                    group.addTask {
                        while !Task.isCancelled {
                            cluster.syncPeersFile()
                            try? await Task.sleep(for: .milliseconds(250))
                        }
                    }
                }
            }
        }
        do {
            try a.pair(with: b)
            try b.pair(with: a)
            Logger(label: "isthmus.dev").info("cluster a \(a.uuid), cluster b \(b.uuid); pairing (IstioMulticluster cluster-b on a, cluster-a on b)")
            let deadline = ContinuousClock.now + .seconds(120)
            var kubeconfigText: String?
            while ContinuousClock.now < deadline {
                if a.isReady("cluster-b"), b.isReady("cluster-a"), let text = b.remoteKubeconfig(for: a) {
                    kubeconfigText = text
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            guard let kubeconfigText else {
                throw DevError("the clusters did not become Ready within 120 s; see the conditions with "
                               + "kubectl get istiomulticlusters -o yaml against each API server")
            }
            let kubeconfig = (dir as NSString).appendingPathComponent("cluster-b-to-a.kubeconfig")
            try kubeconfigText.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: kubeconfig)
            FileHandle.standardOutput.write(Data("""
                isthmus dev: two clusters on loopback, paired
                  cluster a \(a.uuid): API server \(a.apiserver.url), proxy https://127.0.0.1:\(a.proxy.port), metadata \(a.metadataEndpoint)
                  cluster b \(b.uuid): API server \(b.apiserver.url), proxy https://127.0.0.1:\(b.proxy.port), metadata \(b.metadataEndpoint)

                Read cluster A through A's proxy with cluster B's istiod remote secret:
                  kubectl --kubeconfig \(kubeconfig) get svc -A
                  kubectl --kubeconfig \(kubeconfig) get svc -A -w

                Change cluster A as its owner, and see B's watch receive it:
                  kubectl --kubeconfig \(a.adminKubeconfig) -n demo create service clusterip hello --tcp=80:8080
                (cluster B's own API server: \(b.adminKubeconfig))
                \(churnLine)
                Ctrl-C stops everything.

                """.utf8))
            let churning = churnTask(a.apiserver)
            await termination.wait()
            churning?.cancel()
            Logger(label: "isthmus.dev").info("shutting down")
        } catch {
            work.cancel()
            _ = await work.value
            for cluster in clusters { await cluster.shutdown() }
            throw error
        }
        work.cancel()
        _ = await work.value
        for cluster in clusters { await cluster.shutdown() }
    }
}

struct DevError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A service's logger in dev mode: its own label, and which cluster it belongs to.
func devLogger(_ label: String, cluster: String) -> Logger {
    var logger = Logger(label: label)
    logger[metadataKey: "cluster"] = .string(cluster)
    return logger
}
