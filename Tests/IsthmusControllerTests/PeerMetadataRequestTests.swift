import IsthmusController
import IsthmusTrust
import Testing

@Suite("Metadata requests")
struct MetadataRequestTests {
    static let local = LocalIdentity(clusterUUID: Fixtures.uuidB, signingKey: Fixtures.keyB)

    @Test("public metadata is fetched without a token, private with a one-minute token for that peer")
    func https() throws {
        let spec = try IstioMulticlusterSpec(json: Fixtures.parse(
            #"{"metadata":{"endpoint":"https://istio.k8s-a.example.com/metadata/","insecureSkipVerify":true}}"#))
        let pub = PeerMetadataRequest.publicDocument(spec)
        #expect(pub.url == "https://istio.k8s-a.example.com/metadata/public/public.json")
        #expect(pub.bearerToken == nil && pub.filePath == nil && pub.insecureSkipVerify)

        let priv = PeerMetadataRequest.privateDocument(spec, peerClusterUUID: Fixtures.uuidA, local: Self.local, now: 1_800_000_000)
        #expect(priv.url == "https://istio.k8s-a.example.com/metadata/private/multicluster.json")
        let token = try #require(priv.bearerToken)
        let verifierAtA = TokenVerifier(
            localClusterUUID: Fixtures.uuidA,
            peers: try TrustedPeers([TrustedPeer(clusterUUID: Fixtures.uuidB, keys: [Fixtures.keyB.publicKey], rootCA: Fixtures.rootCA_B)]))
        let verified = try verifierAtA.verify(token, scope: .privateMulticluster, now: 1_800_000_030)
        #expect(verified.expiresAt == 1_800_000_060)
        #expect(!"\(priv)".contains(token.rawValue))
    }

    @Test("file:// endpoints read files and send no token")
    func file() throws {
        let spec = try IstioMulticlusterSpec(json: Fixtures.parse(#"{"metadataEndpoint":"file:///srv/peer-a/"}"#))
        #expect(PeerMetadataRequest.publicDocument(spec).filePath == "/srv/peer-a/public/public.json")
        let priv = PeerMetadataRequest.privateDocument(spec, peerClusterUUID: Fixtures.uuidA, local: Self.local, now: 0)
        #expect(priv.filePath == "/srv/peer-a/private/multicluster.json")
        #expect(priv.bearerToken == nil)
    }
}
