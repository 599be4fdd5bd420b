import ArgumentParser
import Foundation
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTrust
import Logging

/// `isthmus dev`: the whole thing on loopback in one command, for a newcomer.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run an in-memory API server behind the proxy, with a fake peer's kubeconfig to try it.",
        discussion: """
            Starts the embedded API server (seeded with namespaces, Services, EndpointSlices, Pods and \
            Secrets), generates this cluster's and a fake peer's keys, trusts the peer, starts the proxy \
            on loopback with TLS and writes DIR/peer.kubeconfig (token signed by the fake peer, scope api) \
            and DIR/admin.kubeconfig (the embedded API server itself, as its owner: create and change \
            things there and watch the peer see them). Ctrl-C stops everything.
            """)

    @Option(help: "Directory for the generated keys, peers file, token and kubeconfig.")
    var dir = ".isthmus-dev"

    @Option(help: "Proxy address, HOST:PORT (port 0 picks a free one).")
    var listen = "127.0.0.1:0"

    @Option(help: "Directory of allowlist policies (*.yaml).")
    var policies = "policies"

    @Option(help: "1: one cluster and a fake peer. 2: clusters A and B, each with proxy, metadata service and controller, paired by IstioMulticluster objects.")
    var clusters = 1

    @Option(help: ArgumentHelp("Change an EndpointSlice and a Service in namespace demo at this period (e.g. 1s), so a watch shows events without a second terminal; off by default.", valueName: "period"))
    var churn: String?

    @OptionGroup(title: "Logging") var logging: LoggingOptions

    func validate() throws {
        guard (1...2).contains(clusters) else { throw ValidationError("--clusters must be 1 or 2, got \(clusters)") }
        if let churn {
            guard let seconds = parseDurationSeconds(churn), seconds > 0 else {
                throw ValidationError("--churn must be a period like 1s or 5s, got '\(churn)'")
            }
        }
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
        logging.bootstrap()
        let termination = await TerminationSignal.install()
        if clusters == 2 { return try await runTwoClusters(termination: termination) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let serviceAccountToken = "dev-sa-" + UUID().uuidString.lowercased()
        let adminToken = "dev-admin-" + UUID().uuidString.lowercased()
        var apiConfiguration = FakeAPIServer.Configuration(tokens: [serviceAccountToken: "system:serviceaccount:isthmus:proxy",
                                                                    adminToken: "dev-admin"])
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
            let admin = try write(APIServerCommand.kubeconfig(server: apiserver.url, caPEM: apiserver.caCertificatePEM,
                                                              token: adminToken),
                                  "admin.kubeconfig", secret: true)
            let churning = churnTask(apiserver)
            FileHandle.standardOutput.write(Data("""
                isthmus dev: API server \(apiserver.url) (in memory), proxy \(server)
                  this cluster \(clusterUUID), fake peer \(peerUUID) (files in \(dir)/)

                Try, as the peer (through the proxy):
                  kubectl --kubeconfig \(kubeconfig) get svc -A
                  kubectl --kubeconfig \(kubeconfig) get svc -A -w
                  kubectl --kubeconfig \(kubeconfig) delete svc web -n demo    # refused: the proxy is read-only

                And as this cluster's owner (the API server itself), while the peer's watch runs:
                  kubectl --kubeconfig \(admin) -n demo create service clusterip hello --tcp=80:8080
                  kubectl --kubeconfig \(admin) -n demo delete service hello
                \(churnLine)
                Ctrl-C stops everything.

                """.utf8))
            await termination.wait()
            churning?.cancel()
            Logger(label: "isthmus.dev").info("shutting down")
            try? await proxy.shutdown()
        } catch {
            try? await apiserver.shutdown()
            throw error
        }
        try await apiserver.shutdown()
    }

    /// The line about `--churn` in the banner.
    var churnLine: String {
        guard let churn else { return "  (isthmus dev --churn 1s changes an EndpointSlice and a Service in demo every second)\n" }
        return "  Every \(churn) the EndpointSlice web-abc12 and the Service web in demo change (--churn).\n"
    }

    /// With `--churn`, a task that changes demo's web EndpointSlice (its
    /// endpoint's address and readiness) and the web Service's annotation
    /// every period, so a peer's watch shows MODIFIED events on its own.
    func churnTask(_ server: FakeAPIServer) -> Task<Void, Never>? {
        guard let churn, let seconds = parseDurationSeconds(churn), seconds > 0 else { return nil }
        return Task {
            var step = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(seconds))
                if Task.isCancelled { break }
                step += 1
                Self.churnOnce(server, step: step)
            }
        }
    }

    /// One change of `--churn`: step N moves web's endpoint between two
    /// addresses, flips its readiness and stamps the Service with N.
    static func churnOnce(_ server: FakeAPIServer, step: Int) {
        let address = step % 2 == 0 ? "10.244.1.20" : "10.244.1.22"
        let endpoint: JSON = .object([("addresses", .array([.string(address)])),
                                      ("conditions", .object([("ready", .bool(step % 3 != 0))]))])
        _ = try? server.mergePatch(resource: "endpointslices", group: "discovery.k8s.io", namespace: "demo", name: "web-abc12",
                                   patch: .object([("endpoints", .array([endpoint]))]))
        _ = try? server.mergePatch(resource: "services", namespace: "demo", name: "web", patch: .object([
            ("metadata", .object([("annotations", .object([("isthmus.dev/churn", .string(String(step)))]))])),
        ]))
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
