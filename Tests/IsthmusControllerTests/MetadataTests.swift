import IsthmusController
import IsthmusKubeTypes
import IsthmusTrust
import Testing

@Suite("Metadata documents")
struct MetadataTests {
    @Test("Deckhouse-shaped public metadata (ED25519 PUBLIC KEY label, extra fields) is accepted")
    func deckhousePublic() throws {
        let text = """
            {"clusterUUID":"\(Fixtures.uuidA)","authnKeyPub":\(JSON.string(Fixtures.deckhousePublicKey).serialized()),
             "rootCA":\(JSON.string(Fixtures.rootCA_A).serialized()),"somethingNew":true}
            """
        let metadata = try PublicMetadata(json: Array(text.utf8))
        #expect(metadata.clusterUUID == Fixtures.uuidA)
        #expect(metadata.trustedPeer.keys.count == 1)
        let deckhouseKey = try SigningKeyPair(pem: Fixtures.deckhousePrivateKey)
        #expect(metadata.trustedPeer.keys[0] == deckhouseKey.publicKey)
        // The cache form keeps the document verbatim, in Deckhouse's order.
        #expect(try PublicMetadata(value: metadata.json) == metadata)
        #expect(metadata.json.objectValue?.map(\.0) == ["clusterUUID", "authnKeyPub", "rootCA"])
    }

    @Test("Deckhouse-shaped private metadata (no Isthmus additions, null gateways) is accepted")
    func deckhousePrivate() throws {
        let plain = try PrivateMetadata(json: Array(#"{"apiHost":"api.k8s-a.example.com","networkName":"a-network","ingressGateways":[{"address":"1.2.3.4","port":15443}]}"#.utf8))
        #expect(plain.apiHost == "api.k8s-a.example.com" && plain.networkName == "a-network")
        #expect(plain.ingressGateways == [PeerIngressGateway(address: "1.2.3.4", port: 15443)])
        #expect(plain.clusterDomain == nil && plain.podSubnets == nil)
        let none = try PrivateMetadata(json: Array(#"{"apiHost":"h:6443","networkName":"","ingressGateways":null}"#.utf8))
        #expect(none.ingressGateways.isEmpty)
    }

    @Test("the Isthmus additions are read, dual-stack lists included")
    func isthmusAdditions() throws {
        let metadata = try PrivateMetadata(json: Array(Fixtures.privateJSON(pods: "10.111.0.0/16,fd00:111::/56").utf8))
        #expect(metadata.clusterDomain == "cluster.local")
        #expect(metadata.podSubnets?.prefixes.count == 2)
        #expect(try PrivateMetadata(value: metadata.json) == metadata)
    }

    struct BadRow: Sendable, CustomTestStringConvertible {
        var json: String
        var want: String
        var testDescription: String { want }
    }

    static let badPublic: [BadRow] = [
        .init(json: "not json", want: "public metadata: not valid JSON"),
        .init(json: "[]", want: "public metadata: must be a JSON object, found an array"),
        .init(json: #"{"authnKeyPub":"x","rootCA":"y"}"#, want: "public metadata: clusterUUID: is missing"),
        .init(json: #"{"clusterUUID":"a b","authnKeyPub":"x","rootCA":"y"}"#, want: "public metadata: clusterUUID: \"a b\" is not a valid cluster ID"),
        .init(json: #"{"clusterUUID":"a","authnKeyPub":"garbage","rootCA":"y"}"#, want: "public metadata: authnKeyPub: no PEM block found"),
        .init(json: #"{"clusterUUID":"a","authnKeyPub":5,"rootCA":"y"}"#, want: "public metadata: authnKeyPub: must be a string, found a number"),
    ]

    @Test("malformed public metadata names the field", arguments: badPublic)
    func badPublicDocuments(_ row: BadRow) {
        #expect(throws: MetadataError.self) { try PublicMetadata(json: Array(row.json.utf8)) }
        do { _ = try PublicMetadata(json: Array(row.json.utf8)) } catch {
            #expect(error.description.hasPrefix(row.want), "\(error.description)")
        }
    }

    /// Found by fuzzing (FuzzPeerDocuments): `prefix(80)` counted Characters, and one
    /// Character can hold thousands of combining scalars, so the message had no bound.
    @Test("a message quotes a bad value cut short and escaped, however long the value")
    func boundedMessages() throws {
        let combining = "e" + String(repeating: "\u{301}", count: 3000)
        do {
            _ = try PublicMetadata(json: Array(#"{"clusterUUID":"\#(combining)","authnKeyPub":"x","rootCA":"y"}"#.utf8))
            Issue.record("accepted")
        } catch {
            #expect(error.description.utf8.count < 400, "\(error.description.utf8.count) bytes")
            #expect(error.description.contains("…"))
        }
        do {
            _ = try PrivateMetadata(json: Array(#"{"apiHost":"a/\#(String(repeating: "b", count: 5000))\n","networkName":"n"}"#.utf8))
            Issue.record("accepted")
        } catch {
            #expect(error.description.utf8.count < 400, "\(error.description.utf8.count) bytes")
            #expect(!error.description.contains("\n"))
        }
        let longMessage = #"{"kind":"Status","message":"\#(String(repeating: "x\u{301}", count: 2000))"}"#
        let refused = PeerMetadataResponse.interpretPublic(status: 403, contentType: "application/json", body: Array(longMessage.utf8))
        guard case .failure(let failure) = refused else { Issue.record("not refused"); return }
        #expect(failure.description.utf8.count < 600, "\(failure.description.utf8.count) bytes")
    }

    @Test("a public key of another algorithm is refused by name")
    func rsaKey() {
        let rsa = """
            -----BEGIN PUBLIC KEY-----
            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5nmRrMxY4BJznt4QvRSBjKxV3MXl
            UZ3ooN12QozuUvMbr3Faw0K0UsoTdNheneMmp9JsNK+mgeC7a1RkiH2WVQ==
            -----END PUBLIC KEY-----
            """
        do {
            _ = try PublicMetadata(json: Array(Fixtures.publicJSON(key: rsa).utf8))
            Issue.record("a P-256 key was accepted")
        } catch {
            #expect(error.field == "authnKeyPub")
            #expect(error.description.contains("only Ed25519"))
        }
        do {
            _ = try PublicMetadata(json: Array(Fixtures.publicJSON(rootCA: Fixtures.deckhousePublicKey).utf8))
            Issue.record("a rootCA without a certificate was accepted")
        } catch {
            #expect(error.description == "public metadata: rootCA: no CERTIFICATE block found")
        }
    }

    static let badPrivate: [BadRow] = [
        .init(json: #"{"networkName":"n"}"#, want: "private metadata: apiHost: is missing"),
        .init(json: #"{"apiHost":"https://api.example.com","networkName":"n"}"#, want: "private metadata: apiHost: \"https://api.example.com\" is not host[:port]"),
        // Found by FuzzPeerDocuments: a backslash (read as `/` by WHATWG URL parsers) was accepted.
        .init(json: #"{"apiHost":"api.example\\evil.com","networkName":"n"}"#, want: "private metadata: apiHost: "),
        .init(json: #"{"apiHost":"api|example.com:443","networkName":"n"}"#, want: "private metadata: apiHost: "),
        .init(json: #"{"apiHost":"api:99999","networkName":"n"}"#, want: "private metadata: apiHost:"),
        .init(json: #"{"apiHost":"api"}"#, want: "private metadata: networkName: is missing"),
        .init(json: #"{"apiHost":"api","networkName":"n","ingressGateways":{}}"#, want: "private metadata: ingressGateways: must be an array"),
        .init(json: #"{"apiHost":"api","networkName":"n","ingressGateways":[{"address":"1.2.3.4","port":0}]}"#,
              want: "private metadata: ingressGateways[0].port: must be an integer port"),
        .init(json: #"{"apiHost":"api","networkName":"n","ingressGateways":[{"port":1}]}"#,
              want: "private metadata: ingressGateways[0].address:"),
        .init(json: #"{"apiHost":"api","networkName":"n","podSubnetCIDR":"10.0.0.0/8,x"}"#,
              want: "private metadata: podSubnetCIDR: \"x\" is not an IPv4 or IPv6 prefix"),
        .init(json: #"{"apiHost":"api","networkName":"n","clusterDomain":7}"#, want: "private metadata: clusterDomain: must be a string"),
    ]

    @Test("malformed private metadata names the field", arguments: badPrivate)
    func badPrivateDocuments(_ row: BadRow) {
        do {
            _ = try PrivateMetadata(json: Array(row.json.utf8))
            Issue.record("accepted \(row.json)")
        } catch {
            #expect(error.description.hasPrefix(row.want), "\(error.description)")
        }
    }

    @Test("apiHost accepts host, host:port and bracketed IPv6")
    func apiHosts() throws {
        for host in ["api.example.com", "api.example.com:6443", "10.0.0.1:443", "[fd00::1]:6443", "[fd00::1]"] {
            #expect(try PrivateMetadata(json: Array(Fixtures.privateJSON(apiHost: host).utf8)).apiHost == host)
        }
        for host in ["api example", "[fd00::1", "[10.0.0.1]:1", ":6443", "api/x", "api:x"] {
            #expect(throws: MetadataError.self, "\(host)") { try PrivateMetadata(json: Array(Fixtures.privateJSON(apiHost: host).utf8)) }
        }
    }

    @Test("HTTP responses become documents or operator-readable failures")
    func responses() throws {
        let body = Array(Fixtures.publicJSON().utf8)
        #expect(try PeerMetadataResponse.interpretPublic(status: 200, contentType: "application/json; charset=utf-8", body: body).get().clusterUUID == Fixtures.uuidA)
        #expect((try? PeerMetadataResponse.interpretPublic(status: 200, contentType: nil, body: body).get()) != nil)

        let html = PeerMetadataResponse.interpretPublic(status: 200, contentType: "text/html", body: Array("<html>".utf8))
        #expect(html == .failure(.wrongContentType("text/html")))
        #expect(FetchFailure.wrongContentType("text/html").reason == "WrongContentType")

        let status = Status(message: "token audience is not this cluster", reason: "Unauthorized", details: nil, code: 401)
        guard case .failure(let refused) = PeerMetadataResponse.interpretPrivate(status: 401, contentType: "application/json", body: status.body) else {
            Issue.record("401 accepted")
            return
        }
        #expect(refused == .refused(code: 401, message: "token audience is not this cluster"))
        #expect(refused.description.contains("IstioMulticluster pointing at this cluster"))
        #expect(PeerMetadataResponse.interpretPrivate(status: 503, contentType: "text/plain", body: []) == .failure(.httpStatus(code: 503, message: nil)))

        guard case .failure(.invalidDocument(let error)) = PeerMetadataResponse.interpretPrivate(status: 200, contentType: "application/json", body: Array("{".utf8)) else {
            Issue.record("bad JSON accepted")
            return
        }
        #expect(error.document == .private)
    }
}
