import ArgumentParser
import Foundation
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTrust

/// `isthmus dev`: the whole thing on loopback in one command, for a newcomer.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run an in-memory API server behind the proxy, with a fake peer's kubeconfig to try it.",
        discussion: """
            Starts the embedded API server (seeded with namespaces, Services, EndpointSlices and Pods), \
            generates this cluster's and a fake peer's keys, trusts the peer, starts the proxy on \
            loopback with TLS and writes DIR/peer.kubeconfig (token signed by the fake peer, scope api). \
            Ctrl-C stops everything.
            """)

    @Option(help: "Directory for the generated keys, peers file, token and kubeconfig.")
    var dir = ".isthmus-dev"

    @Option(help: "Proxy address, HOST:PORT (port 0 picks a free one).")
    var listen = "127.0.0.1:0"

    @Option(help: "Directory of allowlist policies (*.yaml).")
    var policies = "policies"

    @Option(help: "1: one cluster and a fake peer. 2: clusters A and B, each with proxy, metadata service and controller, paired by IstioMulticluster objects.")
    var clusters = 1

    func validate() throws {
        guard (1...2).contains(clusters) else { throw ValidationError("--clusters must be 1 or 2, got \(clusters)") }
        guard APIServerCommand.split(listen) != nil else { throw ValidationError("--listen must be HOST:PORT, got '\(listen)'") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: policies, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--policies: no directory '\(policies)' (run from the repository root or pass --policies)")
        }
    }

    private func write(_ text: String, _ name: String, secret: Bool = false) throws -> String {
        let path = (dir as NSString).appendingPathComponent(name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        if secret { try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path) }
        return path
    }

    func run() async throws {
        if clusters == 2 { return try await runTwoClusters() }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let serviceAccountToken = "dev-sa-" + UUID().uuidString.lowercased()
        var apiConfiguration = FakeAPIServer.Configuration(tokens: [serviceAccountToken: "system:serviceaccount:isthmus:proxy"])
        apiConfiguration.threads = 1
        let apiserver = try await FakeAPIServer.start(apiConfiguration)
        do {
            try Self.seed(apiserver)
            let clusterUUID = UUID().uuidString.lowercased()
            let peerUUID = UUID().uuidString.lowercased()
            let clusterKey = SigningKeyPair()
            let peerKey = SigningKeyPair()
            _ = try write(clusterKey.pemRepresentation, "cluster.key", secret: true)
            _ = try write(peerKey.pemRepresentation, "peer.key", secret: true)
            let upstreamCA = apiserver.caCertificatePEM ?? ""
            let peers = try TrustedPeers([TrustedPeer(clusterUUID: peerUUID, keys: [peerKey.publicKey], rootCA: upstreamCA)])
            let peersFile = try write(peers.encodedJSONString(), "peers.json")
            let tokenFile = try write(serviceAccountToken + "\n", "proxy-sa.token", secret: true)

            var upstream = UpstreamConfiguration(url: apiserver.url, caCertificatePEM: upstreamCA, tokenFile: tokenFile)
            upstream.connectTimeout = .seconds(2)
            var configuration = ProxyConfiguration(upstream: upstream, peersFile: peersFile, policyDirectory: policies,
                                                   localClusterUUID: clusterUUID)
            if let (host, port) = APIServerCommand.split(listen) {
                configuration.host = host
                configuration.port = port
            }
            configuration.threads = 2
            let proxy = try await ProxyServer.start(configuration)
            let dialHost = (configuration.host == "0.0.0.0" || configuration.host == "::") ? "127.0.0.1" : configuration.host
            let server = "https://\(dialHost.contains(":") ? "[\(dialHost)]" : dialHost):\(proxy.port)"
            let now = Int64(Date().timeIntervalSince1970)
            let token = mint(TokenClaims(subject: peerUUID, audience: clusterUUID, scope: .api, now: now, lifetime: 24 * 3600),
                             with: peerKey)
            let kubeconfig = try write(APIServerCommand.kubeconfig(server: server, caPEM: proxy.certificates.caCertificatePEM,
                                                                   token: token),
                                       "peer.kubeconfig", secret: true)
            FileHandle.standardOutput.write(Data("""
                isthmus dev: API server \(apiserver.url) (in memory), proxy \(server)
                  this cluster \(clusterUUID), fake peer \(peerUUID) (files in \(dir)/)

                Try, as the peer:
                  kubectl --kubeconfig \(kubeconfig) get svc -A
                  kubectl --kubeconfig \(kubeconfig) get svc -A -w
                  kubectl --kubeconfig \(kubeconfig) delete svc web -n demo    # refused: the proxy is read-only

                Ctrl-C stops everything.

                """.utf8))
            await APIServerCommand.waitForTerminationSignal()
            printError("isthmus dev: shutting down")
            try? await proxy.shutdown()
        } catch {
            try? await apiserver.shutdown()
            throw error
        }
        try await apiserver.shutdown()
    }

    /// A small mesh: istiod, two apps with EndpointSlices and Pods, and a few Secrets.
    static func seed(_ server: FakeAPIServer) throws {
        func object(_ members: [(String, JSON)]) -> JSON { .object(members) }
        func meta(_ name: String, _ namespace: String?, labels: [(String, JSON)] = []) -> (String, JSON) {
            var m: [(String, JSON)] = [("name", .string(name))]
            if let namespace { m.append(("namespace", .string(namespace))) }
            if !labels.isEmpty { m.append(("labels", .object(labels))) }
            return ("metadata", .object(m))
        }
        let services: [(namespace: String, name: String, port: Int, ip: String)] = [
            ("istio-system", "istiod", 15012, "10.244.0.10"),
            ("demo", "web", 80, "10.244.1.20"),
            ("demo", "api", 8080, "10.244.1.21"),
            ("shop", "cart", 8080, "10.244.2.30"),
        ]
        for namespace in Set(services.map(\.namespace)).sorted() {
            try server.create(resource: "namespaces", object: object([meta(namespace, nil)]))
        }
        for s in services {
            let app: [(String, JSON)] = [("app", .string(s.name))]
            try server.create(resource: "services", object: object([
                meta(s.name, s.namespace, labels: app),
                ("spec", object([("selector", .object(app)),
                                 ("ports", .array([object([("name", .string("tcp")), ("port", .int(s.port))])]))])),
            ]))
            try server.create(resource: "pods", object: object([
                meta("\(s.name)-0", s.namespace, labels: app),
                ("spec", object([("containers", .array([object([("name", .string(s.name)), ("image", .string("example/\(s.name):1"))])]))])),
                ("status", object([("phase", .string("Running")), ("podIP", .string(s.ip))])),
            ]))
            try server.create(resource: "endpointslices", group: "discovery.k8s.io", object: object([
                meta("\(s.name)-abc12", s.namespace, labels: [("kubernetes.io/service-name", .string(s.name))]),
                ("addressType", .string("IPv4")),
                ("endpoints", .array([object([("addresses", .array([.string(s.ip)])),
                                              ("conditions", object([("ready", .bool(true))]))])])),
                ("ports", .array([object([("name", .string("tcp")), ("port", .int(s.port))])])),
            ]))
        }
        // Secrets as a cluster holds them: a gateway credential the default
        // policy serves (istiod reads `credentialName`s), and two kinds that no
        // peer is ever served whatever the policy (docs/security.md, "Never served").
        let secrets: [(namespace: String, name: String, type: String, annotations: [(String, JSON)])] = [
            ("istio-system", "ingressgateway-cert", "kubernetes.io/tls", []),
            ("demo", "web-token", "kubernetes.io/service-account-token",
             [("kubernetes.io/service-account.name", .string("default"))]),
            ("shop", "sh.helm.release.v1.cart.v1", "helm.sh/release.v1", []),
        ]
        for secret in secrets {
            var metadata: [(String, JSON)] = [("name", .string(secret.name)), ("namespace", .string(secret.namespace))]
            if !secret.annotations.isEmpty { metadata.append(("annotations", .object(secret.annotations))) }
            try server.create(resource: "secrets", object: object([
                ("metadata", .object(metadata)), ("type", .string(secret.type)),
                ("data", object([("tls.crt", .string("ZGV2")), ("tls.key", .string("ZGV2"))])),
            ]))
        }
    }
}
