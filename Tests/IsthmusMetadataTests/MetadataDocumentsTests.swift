import IsthmusKubeTypes
@testable import IsthmusMetadata
import IsthmusTrust
import Testing

/// Test material shared by this target's tests.
enum MetadataFixtures {
    static let clusterUUID = "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"
    static let peerUUID = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"

    /// OpenSSL-generated (`openssl genpkey -algorithm ed25519`), and its `pkey -pubout`.
    static let privateKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIGe58GQB4T0Ol3aor+St5KYgbcPsJiHF67o9K/qNB56z
        -----END PRIVATE KEY-----

        """
    static let publicKeyPEM = """
        -----BEGIN PUBLIC KEY-----
        MCowBQYDK2VwAyEAIM6jEwUCJOOYZ/hOHiI9KGG/y7KaesCh5TALzRkjo0g=
        -----END PUBLIC KEY-----

        """
    /// Only the block structure is read from a root CA; the bytes stay verbatim.
    static let rootCA = """
        -----BEGIN CERTIFICATE-----
        MIIBAA==
        -----END CERTIFICATE-----

        """

    static func sources() throws -> MetadataSources {
        MetadataSources(
            clusterUUID: clusterUUID, authnKeys: [try PeerPublicKey(pem: publicKeyPEM)], rootCA: rootCA,
            apiHost: "istio-api.k8s-a.example.com", networkName: "network-a",
            ingressGateways: [IngressGateway(address: "203.0.113.10", port: 15443)],
            clusterDomain: "cluster.local", podSubnetCIDRs: ["10.111.0.0/16", "fd00:111::/56"],
            serviceSubnetCIDRs: ["10.222.0.0/16"])
    }
}

@Suite("metadata documents")
struct MetadataDocumentsTests {
    /// DESIGN §2's examples, with values filled in.
    static let designPublic = #"{"clusterUUID": "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22", "authnKeyPub": "<PEM>", "rootCA": "<PEM>"}"#
    static let designPrivate = #"{"apiHost": "istio-api.k8s-a.example.com", "networkName": "network-a", "ingressGateways": [{"address": "203.0.113.10", "port": 15443}]}"#

    @Test("public metadata has DESIGN §2's members, in its order, with the PEMs a peer can read")
    func publicDocument() throws {
        let documents = try MetadataDocuments(try MetadataFixtures.sources())
        let parsed = try JSON(parsing: documents.publicMetadata.body)
        let design = try JSON(parsing: Self.designPublic)
        #expect(parsed.objectValue?.map(\.0) == design.objectValue?.map(\.0))
        #expect(parsed["clusterUUID"] == design["clusterUUID"])
        #expect(parsed["authnKeyPub"]?.stringValue == MetadataFixtures.publicKeyPEM)
        #expect(parsed["rootCA"]?.stringValue == MetadataFixtures.rootCA)
        // What a consuming cluster (our controller, or Deckhouse) does with it.
        let peer = try TrustedPeer(clusterUUID: try #require(parsed["clusterUUID"]?.stringValue),
                                   authnKeyPub: try #require(parsed["authnKeyPub"]?.stringValue),
                                   rootCA: try #require(parsed["rootCA"]?.stringValue))
        #expect(peer.keys == [try PeerPublicKey(pem: MetadataFixtures.publicKeyPEM)])
        // Compact, Go-style bytes: what Deckhouse's exporter serves.
        #expect(documents.publicMetadata.text == #"{"clusterUUID":"0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22","authnKeyPub":"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAIM6jEwUCJOOYZ/hOHiI9KGG/y7KaesCh5TALzRkjo0g=\n-----END PUBLIC KEY-----\n","rootCA":"-----BEGIN CERTIFICATE-----\nMIIBAA==\n-----END CERTIFICATE-----\n"}"#)
    }

    @Test("private metadata starts with DESIGN §2's members and adds clusterDomain and both CIDR lists")
    func privateDocument() throws {
        let documents = try MetadataDocuments(try MetadataFixtures.sources())
        let parsed = try JSON(parsing: documents.privateMetadata.body)
        let design = try JSON(parsing: Self.designPrivate)
        let members = try #require(parsed.objectValue)
        #expect(members.map(\.0) == ["apiHost", "networkName", "ingressGateways", "clusterDomain", "podSubnetCIDR", "serviceSubnetCIDR"])
        for (name, value) in try #require(design.objectValue) {
            #expect(parsed[name] == value, "\(name)")
        }
        #expect(parsed["ingressGateways"]?.arrayValue?.first?.objectValue?.map(\.0) == ["address", "port"])
        #expect(parsed["ingressGateways"]?.arrayValue?.first?["port"] == .number("15443"))
        #expect(parsed["clusterDomain"] == .string("cluster.local"))
        #expect(parsed["podSubnetCIDR"] == .string("10.111.0.0/16,fd00:111::/56"))
        #expect(parsed["serviceSubnetCIDR"] == .string("10.222.0.0/16"))
    }

    @Test("unset CIDR lists are omitted and no gateways is an empty array, never null")
    func optionalFields() throws {
        var sources = try MetadataFixtures.sources()
        sources.podSubnetCIDRs = []
        sources.serviceSubnetCIDRs = []
        sources.ingressGateways = []
        let documents = try MetadataDocuments(sources)
        #expect(documents.privateMetadata.text ==
                #"{"apiHost":"istio-api.k8s-a.example.com","networkName":"network-a","ingressGateways":[],"clusterDomain":"cluster.local"}"#)
    }

    @Test("the ETag follows the bytes: equal sources, equal tags; one changed address, a new tag")
    func etags() throws {
        let a = try MetadataDocuments(try MetadataFixtures.sources())
        let b = try MetadataDocuments(try MetadataFixtures.sources())
        #expect(a.privateMetadata.etag == b.privateMetadata.etag)
        #expect(a.privateMetadata.etag.hasPrefix("\"") && a.privateMetadata.etag.count == 34)
        var changed = try MetadataFixtures.sources()
        changed.ingressGateways = [IngressGateway(address: "203.0.113.11", port: 15443)]
        let c = try MetadataDocuments(changed)
        #expect(c.privateMetadata.etag != a.privateMetadata.etag)
        #expect(c.publicMetadata == a.publicMetadata)
    }

    @Test("two public keys (a rotation) are published as two blocks in authnKeyPub")
    func rotation() throws {
        var sources = try MetadataFixtures.sources()
        let next = SigningKeyPair().publicKey
        sources.authnKeys.append(next)
        let parsed = try JSON(parsing: try MetadataDocuments(sources).publicMetadata.body)
        let keys = try PeerPublicKey.parseAll(pem: try #require(parsed["authnKeyPub"]?.stringValue))
        #expect(keys == sources.authnKeys)
    }

    struct Invalid: Sendable, CustomStringConvertible {
        var field: String
        var change: @Sendable (inout MetadataSources) -> Void
        var description: String { field }
    }

    static let invalid: [Invalid] = [
        Invalid(field: "clusterUUID") { $0.clusterUUID = "not a uuid" },
        Invalid(field: "key") { $0.authnKeys = [] },
        Invalid(field: "rootCA") { $0.rootCA = "" },
        Invalid(field: "rootCA") { $0.rootCA = MetadataFixtures.publicKeyPEM },
        Invalid(field: "apiHost") { $0.apiHost = "" },
        Invalid(field: "apiHost") { $0.apiHost = "https://api.example.com" },
        Invalid(field: "apiHost") { $0.apiHost = "api.example.com/metadata" },
        Invalid(field: "networkName") { $0.networkName = "" },
        Invalid(field: "ingressGateways[0].port") { $0.ingressGateways = [IngressGateway(address: "203.0.113.1", port: 0)] },
        Invalid(field: "ingressGateways[1].address") {
            $0.ingressGateways.append(IngressGateway(address: "", port: 15443))
        },
        Invalid(field: "clusterDomain") { $0.clusterDomain = "Cluster.Local" },
        Invalid(field: "clusterDomain") { $0.clusterDomain = "cluster.local." },
        Invalid(field: "podSubnetCIDR") { $0.podSubnetCIDRs = ["10.111.0.0"] },
        Invalid(field: "serviceSubnetCIDR") { $0.serviceSubnetCIDRs = ["10.222.0.0/33"] },
        Invalid(field: "serviceSubnetCIDR") { $0.serviceSubnetCIDRs = ["fd00::/129"] },
    ]

    @Test("a bad source is refused at build, naming its field", arguments: invalid)
    func refused(_ row: Invalid) throws {
        var sources = try MetadataFixtures.sources()
        row.change(&sources)
        #expect(throws: MetadataSourceError.self) { try MetadataDocuments(sources) }
        do {
            _ = try MetadataDocuments(sources)
        } catch {
            #expect(error.field == row.field, "\(error)")
        }
    }

    @Test("CIDR syntax: IPv4 and IPv6 forms", arguments: [
        ("10.111.0.0/16", true), ("0.0.0.0/0", true), ("192.168.1.1/32", true), ("fd00:111::/56", true),
        ("::/0", true), ("2001:db8:0:0:0:0:0:0/32", true), ("::ffff:10.0.0.0/104", true),
        ("10.111.0.0", false), ("10.111.0/16", false), ("256.0.0.0/8", false), ("010.0.0.0/8", false),
        ("10.0.0.0/-1", false), ("fd00:::/56", false), ("fd00::1::/64", false), ("1:2:3:4:5:6:7:8:9/64", false),
        ("gggg::/16", false), ("", false), ("/16", false),
    ])
    func cidrSyntax(_ text: String, _ valid: Bool) {
        #expect(CIDRSyntax.isValid(text) == valid)
    }

    @Test("gateway addresses parse from ADDRESS:PORT and [IPv6]:PORT")
    func gatewayParsing() {
        #expect(IngressGateway(parsing: "203.0.113.10:15443") == IngressGateway(address: "203.0.113.10", port: 15443))
        #expect(IngressGateway(parsing: "gw.example.com:443") == IngressGateway(address: "gw.example.com", port: 443))
        #expect(IngressGateway(parsing: "[fd00::10]:15443") == IngressGateway(address: "fd00::10", port: 15443))
        #expect(IngressGateway(parsing: "fd00::10:15443") == nil)
        #expect(IngressGateway(parsing: "203.0.113.10") == nil)
        #expect(IngressGateway(parsing: ":15443") == nil)
        #expect(IngressGateway(address: "fd00::10", port: 15443).description == "[fd00::10]:15443")
    }
}
