import IsthmusController
import IsthmusKubeTypes
import IsthmusTrust
import Testing

/// Objects as a Deckhouse cluster holds them, so an Isthmus controller can
/// take over (or sit beside) a Deckhouse istio module's IstioMulticlusters.
@Suite("Deckhouse interop")
struct DeckhouseInteropTests {
    /// The newer spec form, with a status the Deckhouse hook wrote: no
    /// conditions, `ED25519 PUBLIC KEY` label, a private `ca` member Isthmus
    /// does not use, and `ingressGateways: null`.
    static let deckhouseObject = """
        {"apiVersion":"deckhouse.io/v1alpha1","kind":"IstioMulticluster",
         "metadata":{"name":"cluster-a","generation":1,"creationTimestamp":"2026-01-01T00:00:00Z"},
         "spec":{"enableIngressGateway":true,"metadata":{"endpoint":"https://istio.k8s-a.example.com/metadata/","insecureSkipVerify":false}},
         "status":{"metadataCache":{
            "public":{"authnKeyPub":\(JSON.string(Fixtures.deckhousePublicKey).serialized()),"clusterUUID":"\(Fixtures.uuidA)","rootCA":\(JSON.string(Fixtures.rootCA_A).serialized())},
            "publicLastFetchTimestamp":"2026-11-20T10:00:00Z",
            "private":{"apiHost":"api.k8s-a.example.com","ca":"","ingressGateways":null,"networkName":"network-a"},
            "privateLastFetchTimestamp":"2026-11-20T10:00:00Z"}}}
        """

    @Test("a Deckhouse-written status is the cache: while the endpoint fails, its key is trusted and its remote secret rendered")
    func deckhouseStatusIsTheCache() throws {
        let object = try IstioMulticluster(json: Fixtures.parse(Self.deckhouseObject))
        let fetch = PeerFetch(publicMetadata: .failed(.unreachable("connection timed out"), at: ReconcilerTests.t0))
        let state = ObservedState(multiclusters: [object], fetches: ["cluster-a": fetch])
        let (_, after) = ReconcilerTests.settle(state, at: ReconcilerTests.t0)

        let trusted = try ReconcilerTests.trustedPeers(after)
        let deckhouseKey = try SigningKeyPair(pem: Fixtures.deckhousePrivateKey)
        #expect(trusted[Fixtures.uuidA]?.keys == [deckhouseKey.publicKey])
        let secret = try #require(ReconcilerTests.remoteSecret(after))
        let config = try #require(RemoteKubeconfig(yaml: String(decoding: secret.data[Fixtures.uuidA] ?? [], as: UTF8.self)))
        #expect(config.server == "https://api.k8s-a.example.com")
        #expect(ReconcilerTests.condition(after, "cluster-a", "PublicMetadataFetched")?.message.contains("fetched at 2026-11-20T10:00:00Z") == true)
        // The cache keeps Deckhouse's PEM text verbatim.
        #expect(after.multiclusters[0].status?.value(at: ["metadataCache", "public", "authnKeyPub"])?.stringValue == Fixtures.deckhousePublicKey)
        #expect(after.multiclusters[0].status?.value(at: ["metadataCache", "publicLastFetchTimestamp"])?.stringValue == "2026-11-20T10:00:00Z")
    }

    @Test("a token minted as Deckhouse mints it verifies with Deckhouse's published key")
    func deckhouseToken() throws {
        // A Deckhouse peer (key from its public metadata) calling this cluster's API.
        let deckhouseKey = try SigningKeyPair(pem: Fixtures.deckhousePrivateKey)
        let token = mint(TokenClaims(subject: Fixtures.uuidA, audience: Fixtures.uuidB, scope: .api, now: 1_800_000_000, lifetime: 3600),
                         with: deckhouseKey)
        let metadata = try PublicMetadata(json: Array(Fixtures.publicJSON(key: Fixtures.deckhousePublicKey).utf8))
        let verifier = TokenVerifier(localClusterUUID: Fixtures.uuidB, peers: try TrustedPeers([metadata.trustedPeer]))
        #expect(try verifier.verify(BearerToken(token), scope: .api, now: 1_800_000_100).peer == Fixtures.uuidA)
    }
}
