import IsthmusTrust
import Yams

/// The metadata service's settings as an operator writes them, every field
/// optional: one value from flags, one from the YAML config file, merged with
/// flags winning (``merged(over:)``), then resolved against the files they
/// name (``resolve(_:)``).
///
/// Config file keys are the field names below; the document fields keep their
/// DESIGN §2 names (`apiHost`, `podSubnetCIDR`, ...):
/// ```yaml
/// clusterUUID: 0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22
/// key: /etc/isthmus/keys/tls.key        # private (public derived) or public key PEM
/// rootCA: /etc/istio/root-cert.pem
/// apiHost: istio-api.k8s-a.example.com
/// networkName: network-a
/// ingressGateways: ["203.0.113.10:15443", {address: gw.example.com, port: 15443}]
/// clusterDomain: cluster.local
/// podSubnetCIDR: 10.111.0.0/16,fd00:111::/56
/// serviceSubnetCIDR: [10.222.0.0/16]
/// peers: /etc/isthmus/peers/peers.json
/// listen: 0.0.0.0:8443
/// tlsCert: /etc/isthmus/tls/tls.crt
/// tlsKey: /etc/isthmus/tls/tls.key
/// plainHTTP: false
/// # Read from the Kubernetes API instead (at start; see KubeMetadataSources):
/// kubeconfig: /path/to/kubeconfig                # else kubectl's order ($KUBECONFIG, in-cluster, ~/.kube/config)
/// rootCAConfigMap: istio-system/istio-ca-root-cert  # instead of rootCA; key root-cert.pem
/// ingressGatewayService: istio-system/istio-ingressgateway  # discovery when ingressGateways is unset
/// ```
public struct MetadataSettings: Sendable, Equatable {
    public var clusterUUID: String?
    /// A PEM file holding this cluster's private key (the public key is
    /// derived) or only its public key(s): the service needs no more than the latter.
    public var keyFile: String?
    public var rootCAFile: String?
    public var apiHost: String?
    public var networkName: String?
    /// Nil: discover them (when a discovery source is wired) or publish none.
    public var ingressGateways: [IngressGateway]?
    public var clusterDomain: String?
    public var podSubnetCIDRs: [String]?
    public var serviceSubnetCIDRs: [String]?
    public var peersFile: String?
    public var listen: String?
    public var tlsCertFile: String?
    public var tlsKeyFile: String?
    public var plainHTTP: Bool?
    /// The kubeconfig for ``rootCAConfigMap`` and ``ingressGatewayService``;
    /// nil resolves it as kubectl does.
    public var kubeconfig: String?
    /// `NAMESPACE/NAME` of Istio's root CA ConfigMap (key `root-cert.pem`),
    /// watched; used when ``rootCAFile`` is unset.
    public var rootCAConfigMap: String?
    /// `NAMESPACE/NAME` of the ingressgateway Service whose addresses are
    /// discovered (and watched) when ``ingressGateways`` is unset.
    public var ingressGatewayService: String?

    public init() {}

    /// Whether the settings need the Kubernetes API: a root CA or gateways
    /// that only it can give.
    public var readsKubernetes: Bool {
        (rootCAFile == nil && rootCAConfigMap != nil) || (ingressGateways == nil && ingressGatewayService != nil)
    }

    /// `self`'s values where set, else `base`'s: flags over the config file.
    public func merged(over base: MetadataSettings) -> MetadataSettings {
        var out = base
        if let clusterUUID { out.clusterUUID = clusterUUID }
        if let keyFile { out.keyFile = keyFile }
        if let rootCAFile { out.rootCAFile = rootCAFile }
        if let apiHost { out.apiHost = apiHost }
        if let networkName { out.networkName = networkName }
        if let ingressGateways { out.ingressGateways = ingressGateways }
        if let clusterDomain { out.clusterDomain = clusterDomain }
        if let podSubnetCIDRs { out.podSubnetCIDRs = podSubnetCIDRs }
        if let serviceSubnetCIDRs { out.serviceSubnetCIDRs = serviceSubnetCIDRs }
        if let peersFile { out.peersFile = peersFile }
        if let listen { out.listen = listen }
        if let tlsCertFile { out.tlsCertFile = tlsCertFile }
        if let tlsKeyFile { out.tlsKeyFile = tlsKeyFile }
        if let plainHTTP { out.plainHTTP = plainHTTP }
        if let kubeconfig { out.kubeconfig = kubeconfig }
        if let rootCAConfigMap { out.rootCAConfigMap = rootCAConfigMap }
        if let ingressGatewayService { out.ingressGatewayService = ingressGatewayService }
        return out
    }

    /// `10.0.0.0/16, fd00::/56` → two entries; empty entries are dropped.
    public static func splitCIDRs(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0.filter { $0 != " " && $0 != "\t" }) }.filter { !$0.isEmpty }
    }

    // MARK: The config file

    /// Parses the YAML config file's text. Errors name the file and the key:
    /// `metadata.yaml: ingressGateways[1]: expected ADDRESS:PORT`.
    public init(yaml text: String, file: String) throws(MetadataSourceError) {
        func fail(_ field: String, _ problem: String) -> MetadataSourceError {
            MetadataSourceError(field: "\(file): \(field)", problem: problem)
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw MetadataSourceError(field: file, problem: "not valid YAML: \(error)")
        }
        self.init()
        guard let root else { return }  // an empty file sets nothing
        guard let mapping = root.mapping else { throw MetadataSourceError(field: file, problem: "expected a mapping of settings") }
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { throw MetadataSourceError(field: file, problem: "keys must be strings") }
            func string() throws(MetadataSourceError) -> String {
                guard let s = value.string else { throw fail(key, "expected a string") }
                return s
            }
            func stringList() throws(MetadataSourceError) -> [String] {
                if let sequence = value.sequence {
                    var out: [String] = []
                    for (index, item) in sequence.enumerated() {
                        guard let s = item.string else { throw fail("\(key)[\(index)]", "expected a string") }
                        out.append(contentsOf: Self.splitCIDRs(s))
                    }
                    return out
                }
                return Self.splitCIDRs(try string())
            }
            switch key {
            case "clusterUUID": clusterUUID = try string()
            case "key": keyFile = try string()
            case "rootCA": rootCAFile = try string()
            case "apiHost": apiHost = try string()
            case "networkName": networkName = try string()
            case "clusterDomain": clusterDomain = try string()
            case "podSubnetCIDR": podSubnetCIDRs = try stringList()
            case "serviceSubnetCIDR": serviceSubnetCIDRs = try stringList()
            case "peers": peersFile = try string()
            case "listen": listen = try string()
            case "tlsCert": tlsCertFile = try string()
            case "tlsKey": tlsKeyFile = try string()
            case "kubeconfig": kubeconfig = try string()
            case "rootCAConfigMap":
                let text = try string()
                guard ObjectReference(parsing: text) != nil else { throw fail(key, "expected NAMESPACE/NAME, got \(text.debugDescription)") }
                rootCAConfigMap = text
            case "ingressGatewayService":
                let text = try string()
                guard ObjectReference(parsing: text) != nil else { throw fail(key, "expected NAMESPACE/NAME, got \(text.debugDescription)") }
                ingressGatewayService = text
            case "plainHTTP":
                guard let flag = value.bool else { throw fail(key, "expected true or false") }
                plainHTTP = flag
            case "ingressGateways":
                guard let sequence = value.sequence else { throw fail(key, "expected a list of ADDRESS:PORT or {address, port}") }
                var gateways: [IngressGateway] = []
                for (index, item) in sequence.enumerated() {
                    let field = "\(key)[\(index)]"
                    if let text = item.string {
                        guard let gateway = IngressGateway(parsing: text) else { throw fail(field, "expected ADDRESS:PORT, got \(text.debugDescription)") }
                        gateways.append(gateway)
                    } else if let entry = item.mapping {
                        guard let address = entry["address"]?.string else { throw fail(field + ".address", "missing") }
                        // Decimal only: Yams' own `int` traps on a long sexagesimal (`1:2:3:4:5:6:7:8:9:10:11`).
                        guard let port = entry["port"]?.scalar.flatMap({ Int($0.string) }) else {
                            throw fail(field + ".port", "expected a port number")
                        }
                        gateways.append(IngressGateway(address: address, port: port))
                    } else {
                        throw fail(field, "expected ADDRESS:PORT or {address, port}")
                    }
                }
                ingressGateways = gateways
            default:
                throw fail(key, "unknown setting (known: clusterUUID, key, rootCA, apiHost, networkName, ingressGateways, clusterDomain, podSubnetCIDR, serviceSubnetCIDR, peers, listen, tlsCert, tlsKey, plainHTTP, kubeconfig, rootCAConfigMap, ingressGatewayService)")
            }
        }
    }

    // MARK: Resolving

    /// The contents of the files the settings name, read by the caller.
    public struct Files: Sendable, Equatable {
        public var key: String
        public var rootCA: String
        public var peers: [UInt8]

        public init(key: String, rootCA: String, peers: [UInt8]) {
            self.key = key
            self.rootCA = rootCA
            self.peers = peers
        }
    }

    /// The settings a running service cannot do without, by field name.
    public func requireFields() throws(MetadataSourceError) {
        let required: [(String, String?)] = [
            ("clusterUUID", clusterUUID), ("key", keyFile), ("rootCA", rootCAFile ?? rootCAConfigMap), ("apiHost", apiHost),
            ("networkName", networkName), ("peers", peersFile),
        ]
        for (field, value) in required where value == nil {
            throw MetadataSourceError(field: field, problem: field == "rootCA" ? "must be set (or rootCAConfigMap)" : "must be set")
        }
    }

    /// The document sources (gateways as `gateways`) and the trusted peers.
    /// Pure: the files' contents are passed in.
    public func resolve(_ files: Files, gateways: [IngressGateway]) throws(MetadataSourceError)
        -> (sources: MetadataSources, peers: TrustedPeers)
    {
        try requireFields()
        let keys: [PeerPublicKey]
        do {
            keys = try Self.publicKeys(fromPEM: files.key)
        } catch {
            throw MetadataSourceError(field: "key", problem: "\(keyFile ?? ""): \(error)")
        }
        let peers: TrustedPeers
        do {
            peers = try TrustedPeers(json: files.peers)
        } catch {
            throw MetadataSourceError(field: "peers", problem: "\(peersFile ?? ""): \(error)")
        }
        let sources = MetadataSources(
            clusterUUID: clusterUUID ?? "", authnKeys: keys, rootCA: files.rootCA, apiHost: apiHost ?? "",
            networkName: networkName ?? "", ingressGateways: gateways, clusterDomain: clusterDomain ?? "cluster.local",
            podSubnetCIDRs: podSubnetCIDRs ?? [], serviceSubnetCIDRs: serviceSubnetCIDRs ?? [])
        do {
            try sources.validate()
        } catch where error.field == "rootCA" {
            // Named after the setting the operator used, so the message points at the right flag.
            throw MetadataSourceError(field: rootCAFile == nil && rootCAConfigMap != nil ? "rootCAConfigMap" : "rootCA",
                                      problem: "\(rootCASourceName): \(error.problem)")
        }
        return (sources, peers)
    }

    /// The root CA's origin, for messages: the file, else the ConfigMap.
    var rootCASourceName: String {
        rootCAFile ?? rootCAConfigMap.map { "configmap \($0) key \(KubeMetadataSources.rootCAKey)" } ?? ""
    }

    /// A private key yields its public key; public key blocks are taken as they
    /// are (several during a rotation, current first).
    static func publicKeys(fromPEM text: String) throws -> [PeerPublicKey] {
        let blocks = try PEMBlock.parseAll(text)
        guard !blocks.isEmpty else { throw KeyError.noPEMBlock }
        if blocks.count == 1, SigningKeyPair.acceptedPEMLabels.contains(blocks[0].label) {
            return [try SigningKeyPair(pem: text).publicKey]
        }
        return try PeerPublicKey.parseAll(pem: text)
    }
}
