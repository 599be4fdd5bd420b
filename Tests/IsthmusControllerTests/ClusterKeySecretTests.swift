import IsthmusController
import IsthmusTrust
import Testing

@Suite("Cluster key Secret")
struct ClusterKeySecretTests {
    @Test("no Secret: a key pair is generated into a new one, PKCS#8 and PKIX PEM")
    func generates() throws {
        let fixed = try SigningKeyPair(pem: Fixtures.deckhousePrivateKey)
        guard case .create(let secret, let key) = try ClusterKeySecret.decide(existing: nil, namespace: "isthmus", generate: { fixed }) else {
            Issue.record("expected a new Secret")
            return
        }
        #expect(secret.name == "isthmus-cluster-key" && secret.namespace == "isthmus")
        #expect(key.publicKey == fixed.publicKey)
        let privatePEM = String(decoding: secret.data["private.pem"] ?? [], as: UTF8.self)
        #expect(privatePEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        #expect(try SigningKeyPair(pem: privatePEM).publicKey == fixed.publicKey)
        #expect(try PeerPublicKey(pem: String(decoding: secret.data["public.pem"] ?? [], as: UTF8.self)) == fixed.publicKey)
        // Read back, the same Secret is used as it is.
        guard case .use(let again) = try ClusterKeySecret.decide(existing: secret, namespace: "isthmus") else {
            Issue.record("an existing key was not used")
            return
        }
        #expect(again.publicKey == fixed.publicKey)
    }

    @Test("a Secret without a usable key is reported by field and never overwritten")
    func refusesBrokenSecret() {
        let other = SigningKeyPair()
        let cases: [(SecretObject, String)] = [
            (SecretObject(namespace: "isthmus", name: "isthmus-cluster-key", data: [:]),
             "Secret isthmus/isthmus-cluster-key: data.private.pem: missing; the Secret exists, so it is not replaced"),
            (SecretObject(namespace: "isthmus", name: "isthmus-cluster-key", data: ["private.pem": Array("junk".utf8)]),
             "Secret isthmus/isthmus-cluster-key: data.private.pem: no PEM block found"),
            (SecretObject(namespace: "isthmus", name: "isthmus-cluster-key", data: [
                "private.pem": Array(Fixtures.deckhousePrivateKey.utf8), "public.pem": Array(other.publicKey.pemRepresentation.utf8),
            ]), "not the public half of private.pem"),
        ]
        for (secret, message) in cases {
            do {
                _ = try ClusterKeySecret.decide(existing: secret, namespace: "isthmus")
                Issue.record("accepted \(secret.data.keys)")
            } catch {
                #expect(error.description.contains(message), "\(error.description)")
                #expect(!error.description.contains("MC4CAQAw"), "key material must not appear")
            }
        }
    }
}

@Suite("Gauges")
struct GaugeTests {
    @Test("readiness, token expiry and requirement gauges per peer, 0 as well as 1")
    func gauges() throws {
        let reconciler = ReconcilerTests.reconciler
        let fetch = ReconcilerTests.fetched(Fixtures.publicMetadata(), Fixtures.privateMetadata(pods: "10.112.0.0/24"))
        let bad = reconciler.desiredState(ObservedState(multiclusters: [ReconcilerTests.object()], fetches: ["cluster-a": fetch]),
                                          now: ReconcilerTests.t0)
        let samples = bad.gaugeSamples()
        func value(_ name: String, _ labels: [String: String]) -> Double? {
            samples.first { $0.name == name && $0.labels == labels }?.value
        }
        #expect(value(ControllerMetrics.requirementViolations, ["peer": "cluster-a", "requirement": "PodSubnetOverlap"]) == 1)
        #expect(value(ControllerMetrics.requirementViolations, ["peer": "cluster-a", "requirement": "ClusterDomainMismatch"]) == 0)
        #expect(value(ControllerMetrics.peerReady, ["peer": "cluster-a"]) == 0)
        #expect(value(ControllerMetrics.trustedPeers, [:]) == 1)

        let good = reconciler.desiredState(
            ObservedState(multiclusters: [ReconcilerTests.object()], fetches: ["cluster-a": ReconcilerTests.fetched()]), now: ReconcilerTests.t0)
        let goodSamples = good.gaugeSamples()
        #expect(goodSamples.contains(MetricSample(name: ControllerMetrics.peerReady, labels: ["peer": "cluster-a"], value: 1)))
        #expect(goodSamples.contains(MetricSample(
            name: "isthmus_controller_remote_token_expiry_timestamp_seconds", labels: ["peer": "cluster-a"],
            value: Double(ReconcilerTests.t0 + 7 * 86_400))))
    }
}
