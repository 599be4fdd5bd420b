import Foundation
import IsthmusController
import IsthmusKubeTypes
import IsthmusTrust
import Testing
import Yams

/// The controller runs in cluster B; its IstioMulticluster "cluster-a" points at A.
@Suite("istiod remote secret")
struct RemoteSecretTests {
    static let now: Int64 = 1_800_000_000
    static let localB = LocalIdentity(clusterUUID: Fixtures.uuidB, signingKey: Fixtures.keyB)
    static let renderer = RemoteSecretRenderer(local: localB, namespace: "istio-system")
    static let spec = IstioMulticlusterSpec(
        endpoint: try! MetadataEndpoint(parsing: "https://istio.k8s-a.example.com/metadata/", field: "spec.metadataEndpoint"),
        ca: Fixtures.rootCA_A)

    static func render(existing: SecretObject? = nil, at time: Int64 = now, spec: IstioMulticlusterSpec = spec,
                       renderer: RemoteSecretRenderer = renderer, apiHost: String = "api.k8s-a.example.com") -> SecretObject {
        renderer.render(multiclusterName: "cluster-a", peerClusterUUID: Fixtures.uuidA, apiHost: apiHost, spec: spec,
                        existing: existing, now: time)
    }

    static func kubeconfigText(_ secret: SecretObject) -> String {
        String(decoding: secret.data[Fixtures.uuidA] ?? [], as: UTF8.self)
    }

    /// A's proxy: trusts B's key, expects `aud` = A.
    static let verifierAtA = TokenVerifier(
        localClusterUUID: Fixtures.uuidA,
        peers: try! TrustedPeers([TrustedPeer(clusterUUID: Fixtures.uuidB, keys: [Fixtures.keyB.publicKey], rootCA: Fixtures.rootCA_B)]))

    @Test("the Secret has DESIGN §2's name, label, annotation and data key")
    func secretShape() {
        let secret = Self.render()
        #expect(secret.name == "istio-remote-secret-cluster-a")
        #expect(secret.namespace == "istio-system")
        #expect(secret.labels["istio/multiCluster"] == "true")
        #expect(secret.labels["isthmus.io/remote-secret"] == "true")
        #expect(secret.annotations["isthmus.io/istio-multicluster"] == "cluster-a")
        #expect(secret.annotations["networking.istio.io/cluster"] == Fixtures.uuidA)
        #expect(Array(secret.data.keys) == [Fixtures.uuidA])
        // On the wire, data is Base64 and the object round-trips.
        #expect(SecretObject(json: secret.json) == secret)
    }

    @Test("the kubeconfig, parsed back as YAML, points at https://<apiHost> with the spec's CA and a token")
    func kubeconfigFields() throws {
        let text = Self.kubeconfigText(Self.render())
        let root = try #require(try Yams.load(yaml: text) as? [String: Any])
        #expect(root["apiVersion"] as? String == "v1")
        #expect(root["kind"] as? String == "Config")
        #expect(root["current-context"] as? String == "cluster-a")
        let clusters = try #require(root["clusters"] as? [[String: Any]])
        let cluster = try #require(clusters.first?["cluster"] as? [String: Any])
        #expect(clusters.first?["name"] as? String == "cluster-a")
        #expect(cluster["server"] as? String == "https://api.k8s-a.example.com")
        let caData = try #require(cluster["certificate-authority-data"] as? String)
        #expect(caData == Base64Reference.encode(Fixtures.rootCA_A))
        #expect(cluster["insecure-skip-tls-verify"] == nil)
        let contexts = try #require(root["contexts"] as? [[String: Any]])
        let context = try #require(contexts.first?["context"] as? [String: Any])
        #expect(context["cluster"] as? String == "cluster-a" && context["user"] as? String == "cluster-a")
        let users = try #require(root["users"] as? [[String: Any]])
        let user = try #require(users.first?["user"] as? [String: Any])
        let token = try #require(user["token"] as? String)
        #expect(token.split(separator: ".").count == 3)
    }

    @Test("the token verifies at the peer's proxy: sub = this cluster, aud = the peer, scope api, 7 days")
    func tokenVerifiesAtPeer() throws {
        let config = try #require(RemoteKubeconfig(yaml: Self.kubeconfigText(Self.render())))
        let verified = try Self.verifierAtA.verify(BearerToken(config.token), scope: .api, now: Self.now + 3600)
        #expect(verified.peer == Fixtures.uuidB)
        #expect(verified.claims.subject == Fixtures.uuidB)
        #expect(verified.claims.audience == Fixtures.uuidA)
        #expect(verified.claims.issuer == "d8-istio")
        #expect(verified.expiresAt == Self.now + 7 * 86_400)
        // The wrong scope is refused: this token cannot read private metadata.
        #expect(throws: TokenFailure.self) { try Self.verifierAtA.verify(BearerToken(config.token), scope: .privateMulticluster, now: Self.now) }
    }

    @Test("real kubectl reads the rendered kubeconfig: server, token, CA and context")
    func kubectlReadsIt() throws {
        let text = Self.kubeconfigText(Self.render())
        let config = try #require(RemoteKubeconfig(yaml: text))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-controller-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("kubeconfig")
        try text.write(to: file, atomically: true, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/kubectl")
        process.arguments = [
            "--kubeconfig", file.path, "config", "view", "--raw", "-o",
            "jsonpath={.current-context}|{.clusters[0].cluster.server}|{.users[0].user.token}|{.clusters[0].cluster.certificate-authority-data}",
        ]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let fields = String(decoding: data, as: UTF8.self).split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        #expect(process.terminationStatus == 0, "\(fields)")
        #expect(fields == ["cluster-a", "https://api.k8s-a.example.com", config.token, Base64Reference.encode(Fixtures.rootCA_A)])
    }

    @Test("insecureSkipVerify writes insecure-skip-tls-verify and no CA, as kubectl requires")
    func insecure() throws {
        var spec = Self.spec
        spec.insecureSkipVerify = true
        let config = try #require(RemoteKubeconfig(yaml: Self.kubeconfigText(Self.render(spec: spec))))
        #expect(config.insecureSkipTLSVerify && config.caPEM == nil)
        spec.insecureSkipVerify = false
        spec.ca = nil
        let plain = try #require(RemoteKubeconfig(yaml: Self.kubeconfigText(Self.render(spec: spec))))
        #expect(!plain.insecureSkipTLSVerify && plain.caPEM == nil)
    }

    @Test("names that look like YAML numbers or booleans stay strings")
    func yamlQuoting() throws {
        let config = RemoteKubeconfig(name: "123", server: "https://true", caPEM: nil, insecureSkipTLSVerify: false, token: "null")
        #expect(RemoteKubeconfig(yaml: config.yaml()) == config)
    }

    @Test("re-rendering before the threshold keeps the Secret's data byte for byte")
    func keptUntilThreshold() {
        let first = Self.render()
        let policy = APITokenPolicy()
        // Just before less than a third of the lifetime is left.
        let later = Self.now + policy.lifetime - policy.remintThreshold
        #expect(Self.render(existing: first, at: later).data == first.data)
        #expect(Self.render(existing: first, at: Self.now + 60).data == first.data)
    }

    @Test("the token is re-minted once less than the configured fraction is left")
    func remintedAfterThreshold() throws {
        let first = Self.render()
        let policy = APITokenPolicy()
        let time = Self.now + policy.lifetime - policy.remintThreshold + 1
        let second = Self.render(existing: first, at: time)
        #expect(second.data != first.data)
        let config = try #require(RemoteKubeconfig(yaml: Self.kubeconfigText(second)))
        #expect(try Self.verifierAtA.verify(BearerToken(config.token), scope: .api, now: time).expiresAt == time + policy.lifetime)
    }

    @Test("a configurable lifetime and fraction: 1 day, re-mint with half left")
    func configurablePolicy() throws {
        let custom = RemoteSecretRenderer(local: Self.localB, namespace: "istio-system",
                                          tokenPolicy: APITokenPolicy(lifetime: 86_400, remintBelowFraction: 0.5))
        let first = Self.render(renderer: custom)
        #expect(Self.render(existing: first, at: Self.now + 43_200, renderer: custom).data == first.data)
        #expect(Self.render(existing: first, at: Self.now + 43_201, renderer: custom).data != first.data)
        // Shortening the lifetime replaces tokens minted for longer.
        let shorter = RemoteSecretRenderer(local: Self.localB, namespace: "istio-system", tokenPolicy: APITokenPolicy(lifetime: 3600))
        #expect(Self.render(existing: first, at: Self.now + 1, renderer: shorter).data != first.data)
    }

    @Test("a token signed by a previous key of ours is re-minted")
    func keyRotation() throws {
        let first = Self.render()
        let rotated = RemoteSecretRenderer(local: LocalIdentity(clusterUUID: Fixtures.uuidB, signingKey: SigningKeyPair()), namespace: "istio-system")
        let second = Self.render(existing: first, at: Self.now + 10, renderer: rotated)
        #expect(second.data != first.data)
    }

    @Test("a new apiHost keeps the token but rewrites the server")
    func apiHostChange() throws {
        let first = Self.render()
        let second = Self.render(existing: first, at: Self.now + 10, apiHost: "api2.k8s-a.example.com:8443")
        let a = try #require(RemoteKubeconfig(yaml: Self.kubeconfigText(first)))
        let b = try #require(RemoteKubeconfig(yaml: Self.kubeconfigText(second)))
        #expect(b.server == "https://api2.k8s-a.example.com:8443")
        #expect(a.token == b.token)
    }

    @Test("a Secret spelt by another renderer but meaning the same is not rewritten")
    func semanticComparison() throws {
        let first = Self.render()
        let config = try #require(RemoteKubeconfig(yaml: Self.kubeconfigText(first)))
        // Deckhouse's template: plain scalars, different key order.
        let deckhouseStyle = """
            apiVersion: v1
            kind: Config
            clusters:
            - cluster:
                server: https://api.k8s-a.example.com
                certificate-authority-data: \(Base64Reference.encode(Fixtures.rootCA_A))
              name: cluster-a
            contexts:
            - context:
                cluster: cluster-a
                user: cluster-a
              name: cluster-a
            current-context: cluster-a
            preferences: {}
            users:
            - name: cluster-a
              user:
                token: \(config.token)

            """
        var existing = first
        existing.data[Fixtures.uuidA] = Array(deckhouseStyle.utf8)
        #expect(Self.render(existing: existing, at: Self.now + 100).data == existing.data)
    }

    /// Found by FuzzKubeconfig: `certificate-authority-data: #...` is a comment, so the value is
    /// null; it was read as an empty CA, where the Kubernetes client reads no CA.
    @Test("an empty or null certificate-authority-data is no CA, as the Kubernetes client reads it", arguments: [
        #"certificate-authority-data: """#, "certificate-authority-data: #LS0tLS1C", "certificate-authority-data:",
    ])
    func emptyCAIsNoCA(line: String) throws {
        let yaml = """
            clusters:
            - cluster:
                \(line)
                server: "https://api.k8s-a.example.com"
              name: a
            contexts:
            - {context: {cluster: a, user: a}, name: a}
            current-context: a
            users:
            - {name: a, user: {token: t}}

            """
        let config = try #require(RemoteKubeconfig(yaml: yaml))
        #expect(config.caPEM == nil)
        #expect(RemoteKubeconfig(yaml: config.yaml()) == config)
    }

    @Test("the private-metadata token is a one-minute private-multicluster token for the peer")
    func privateToken() throws {
        let token = Self.localB.privateMetadataToken(peerClusterUUID: Fixtures.uuidA, now: Self.now)
        let verified = try Self.verifierAtA.verify(token, scope: .privateMulticluster, now: Self.now)
        #expect(verified.expiresAt == Self.now + 60)
        #expect("\(token)" == "<redacted>")
    }
}

/// An independent Base64 encoder for expectations (the module's is internal).
enum Base64Reference {
    static func encode(_ text: String) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        let bytes = Array(text.utf8)
        var out = ""
        for chunk in stride(from: 0, to: bytes.count, by: 3) {
            let b = Array(bytes[chunk..<min(chunk + 3, bytes.count)])
            let n = (UInt32(b[0]) << 16) | (b.count > 1 ? UInt32(b[1]) << 8 : 0) | (b.count > 2 ? UInt32(b[2]) : 0)
            out.append(table[Int(n >> 18 & 63)])
            out.append(table[Int(n >> 12 & 63)])
            out.append(b.count > 1 ? table[Int(n >> 6 & 63)] : "=")
            out.append(b.count > 2 ? table[Int(n & 63)] : "=")
        }
        return out
    }
}
