@testable import IsthmusMetadata
import IsthmusTrust
import Testing

@Suite("metadata settings: config file, flags, resolution")
struct MetadataSettingsTests {
    static let yaml = """
        clusterUUID: 0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22
        key: /etc/isthmus/keys/tls.key
        rootCA: /etc/istio/root-cert.pem
        apiHost: istio-api.k8s-a.example.com
        networkName: network-a
        ingressGateways:
        - 203.0.113.10:15443
        - {address: gw.example.com, port: 15443}
        - "[fd00::10]:15443"
        clusterDomain: cluster.local
        podSubnetCIDR: 10.111.0.0/16, fd00:111::/56
        serviceSubnetCIDR: [10.222.0.0/16]
        peers: /etc/isthmus/peers/peers.json
        listen: 0.0.0.0:8443
        plainHTTP: true
        kubeconfig: /etc/kube/config
        rootCAConfigMap: istio-system/istio-ca-root-cert
        ingressGatewayService: istio-system/istio-ingressgateway
        """

    @Test("every config key is read")
    func parsesEveryKey() throws {
        let settings = try MetadataSettings(yaml: Self.yaml, file: "metadata.yaml")
        #expect(settings.clusterUUID == MetadataFixtures.clusterUUID)
        #expect(settings.keyFile == "/etc/isthmus/keys/tls.key")
        #expect(settings.rootCAFile == "/etc/istio/root-cert.pem")
        #expect(settings.apiHost == "istio-api.k8s-a.example.com")
        #expect(settings.networkName == "network-a")
        #expect(settings.ingressGateways == [IngressGateway(address: "203.0.113.10", port: 15443),
                                             IngressGateway(address: "gw.example.com", port: 15443),
                                             IngressGateway(address: "fd00::10", port: 15443)])
        #expect(settings.clusterDomain == "cluster.local")
        #expect(settings.podSubnetCIDRs == ["10.111.0.0/16", "fd00:111::/56"])
        #expect(settings.serviceSubnetCIDRs == ["10.222.0.0/16"])
        #expect(settings.peersFile == "/etc/isthmus/peers/peers.json")
        #expect(settings.listen == "0.0.0.0:8443")
        #expect(settings.plainHTTP == true)
        #expect(settings.kubeconfig == "/etc/kube/config")
        #expect(settings.rootCAConfigMap == "istio-system/istio-ca-root-cert")
        #expect(settings.ingressGatewayService == "istio-system/istio-ingressgateway")
        // Files and configured gateways win, so the API is not needed.
        #expect(!settings.readsKubernetes)
        var fromAPI = settings
        fromAPI.rootCAFile = nil
        #expect(fromAPI.readsKubernetes)
        fromAPI = settings
        fromAPI.ingressGateways = nil
        #expect(fromAPI.readsKubernetes)
    }

    @Test("NAMESPACE/NAME references", arguments: [
        ("istio-system/istio-ingressgateway", ObjectReference(namespace: "istio-system", name: "istio-ingressgateway")),
        ("istio-ingressgateway", nil), ("/name", nil), ("ns/", nil), ("a/b/c", nil),
    ])
    func objectReferences(_ text: String, _ expected: ObjectReference?) {
        #expect(ObjectReference(parsing: text) == expected)
    }

    @Test("config file mistakes name the file and the key", arguments: [
        ("apiHost: [a, b]", "metadata.yaml: apiHost: expected a string"),
        ("ingressGateways: [203.0.113.10]", #"metadata.yaml: ingressGateways[0]: expected ADDRESS:PORT, got "203.0.113.10""#),
        ("ingressGateways: [{address: gw}]", "metadata.yaml: ingressGateways[0].port: expected a port number"),
        // Yams' own integer conversion traps on this one; the port is read as a decimal.
        ("ingressGateways: [{address: gw, port: 1:2:3:4:5:6:7:8:9:10:11}]", "metadata.yaml: ingressGateways[0].port: expected a port number"),
        ("plainHTTP: sometimes", "metadata.yaml: plainHTTP: expected true or false"),
        ("rootCAConfigMap: istio-ca-root-cert", #"metadata.yaml: rootCAConfigMap: expected NAMESPACE/NAME, got "istio-ca-root-cert""#),
        ("ingressGatewayService: [a]", "metadata.yaml: ingressGatewayService: expected a string"),
        ("apiHots: x", "metadata.yaml: apiHots: unknown setting"),
        ("- a list", "metadata.yaml: expected a mapping of settings"),
        ("apiHost: [", "metadata.yaml: not valid YAML"),
    ])
    func configErrors(_ text: String, _ message: String) {
        do {
            _ = try MetadataSettings(yaml: text, file: "metadata.yaml")
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error)")
        }
    }

    @Test("flags win over the config file, field by field")
    func merge() throws {
        let file = try MetadataSettings(yaml: Self.yaml, file: "metadata.yaml")
        var flags = MetadataSettings()
        flags.apiHost = "api.override.example.com:443"
        flags.ingressGateways = []
        let merged = flags.merged(over: file)
        #expect(merged.apiHost == "api.override.example.com:443")
        #expect(merged.ingressGateways == [])
        #expect(merged.networkName == "network-a")
        #expect(merged.clusterUUID == file.clusterUUID)
    }

    func settings() -> MetadataSettings {
        var settings = MetadataSettings()
        settings.clusterUUID = MetadataFixtures.clusterUUID
        settings.keyFile = "key.pem"
        settings.rootCAFile = "root-cert.pem"
        settings.apiHost = "istio-api.k8s-a.example.com"
        settings.networkName = "network-a"
        settings.peersFile = "peers.json"
        return settings
    }

    @Test("the key file may hold the private key (public derived) or the public key")
    func keyForms() throws {
        for pem in [MetadataFixtures.privateKeyPEM, MetadataFixtures.publicKeyPEM] {
            let (sources, peers) = try settings().resolve(
                .init(key: pem, rootCA: MetadataFixtures.rootCA, peers: Array("{}".utf8)), gateways: [])
            #expect(sources.authnKeys == [try PeerPublicKey(pem: MetadataFixtures.publicKeyPEM)])
            #expect(peers.isEmpty)
            #expect(sources.clusterDomain == "cluster.local")
        }
    }

    @Test("resolution errors name the field and the file, never the key material", arguments: [
        ("key", "not a key", "{}", "key: key.pem: no PEM block found"),
        ("rootCA", MetadataFixtures.privateKeyPEM, "{}", "rootCA: root-cert.pem: no CERTIFICATE block found"),
        ("peers", MetadataFixtures.privateKeyPEM, "[]", "peers: peers.json: trusted peers: expected an object"),
    ])
    func resolutionErrors(_ field: String, _ key: String, _ peers: String, _ message: String) {
        let rootCA = field == "rootCA" ? MetadataFixtures.publicKeyPEM : MetadataFixtures.rootCA
        do {
            _ = try settings().resolve(.init(key: key, rootCA: rootCA, peers: Array(peers.utf8)), gateways: [])
            Issue.record("accepted")
        } catch {
            #expect(error.field == field)
            #expect(error.description.hasPrefix(message), "\(error)")
            #expect(!error.description.contains("MC4CAQAw"))
        }
    }

    @Test("a missing required setting is named")
    func missing() {
        var incomplete = settings()
        incomplete.networkName = nil
        #expect(throws: MetadataSourceError(field: "networkName", problem: "must be set")) {
            try incomplete.requireFields()
        }
    }
}
