import IsthmusController
import IsthmusKubeTypes
import IsthmusTrust

/// Shared material: two clusters' identities and Deckhouse-shaped documents.
enum Fixtures {
    static let uuidA = "2a0c1b5e-7d6f-4c1a-9b8e-0f1e2d3c4b5a"
    static let uuidB = "b7e3d2c1-0a9f-4e8d-8c7b-6a5f4e3d2c1b"
    static let uuidC = "c0ffee00-1111-4222-8333-444455556666"

    /// Self-signed Ed25519 CA certificates made with `openssl req -x509 -newkey ed25519`.
    static let rootCA_A = """
        -----BEGIN CERTIFICATE-----
        MIIBQjCB9aADAgECAhR9y8uqrpszc6dChhc7j5DBbDph2TAFBgMrZXAwFzEVMBMG
        A1UEAwwMaXN0aW8gcm9vdCBBMB4XDTI2MTEyNTE5NTg1M1oXDTM2MTEyMjE5NTg1
        M1owFzEVMBMGA1UEAwwMaXN0aW8gcm9vdCBBMCowBQYDK2VwAyEAS4ORexocR/Qt
        ntGCAiDNaWjWhS3LkN93QajDREBifTSjUzBRMB0GA1UdDgQWBBQ4EVe/mhqdSW1X
        TApl3bXjJ5KbRTAfBgNVHSMEGDAWgBQ4EVe/mhqdSW1XTApl3bXjJ5KbRTAPBgNV
        HRMBAf8EBTADAQH/MAUGAytlcANBAMIeW/oM2Uy896wVrVkGZ04mrr3jOgIYrrGi
        idghnoWD9NFsvaIsL8geOv555ks+P1W3YID0ubxn8vwSQ8Nzuw8=
        -----END CERTIFICATE-----

        """
    static let rootCA_B = """
        -----BEGIN CERTIFICATE-----
        MIIBQjCB9aADAgECAhQKFH5VO0hW7cJxnN/si0zHwFiqwDAFBgMrZXAwFzEVMBMG
        A1UEAwwMaXN0aW8gcm9vdCBCMB4XDTI2MTEyNTE5NTg1M1oXDTM2MTEyMjE5NTg1
        M1owFzEVMBMGA1UEAwwMaXN0aW8gcm9vdCBCMCowBQYDK2VwAyEAcFZ5h6C8YI3x
        T8XtjANMaBjNSAR0bfDm88h92kP/2wejUzBRMB0GA1UdDgQWBBRorD+eaBhjZijO
        DLbi1yt+B23/2zAfBgNVHSMEGDAWgBRorD+eaBhjZijODLbi1yt+B23/2zAPBgNV
        HRMBAf8EBTADAQH/MAUGAytlcANBABSeYL87MnbZncyEhz/CqawXJXwqg3P0/OdR
        SlSgj4s3yWpn0RSBpYAg4SumjSYzhHSk+d7OztKVbpubBaVkEAQ=
        -----END CERTIFICATE-----

        """

    /// An OpenSSL-generated key pair, the public half under the label
    /// Deckhouse writes (`ED25519 PUBLIC KEY`).
    static let deckhousePrivateKey = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIGe58GQB4T0Ol3aor+St5KYgbcPsJiHF67o9K/qNB56z
        -----END PRIVATE KEY-----

        """
    static let deckhousePublicKey = """
        -----BEGIN ED25519 PUBLIC KEY-----
        MCowBQYDK2VwAyEAIM6jEwUCJOOYZ/hOHiI9KGG/y7KaesCh5TALzRkjo0g=
        -----END ED25519 PUBLIC KEY-----

        """

    static let keyA = SigningKeyPair()
    static let keyB = SigningKeyPair()

    /// Cluster A's public metadata as its metadata service serves it.
    static func publicJSON(uuid: String = uuidA, key: String = keyA.publicKey.pemRepresentation, rootCA: String = rootCA_A) -> String {
        JSON.object([("clusterUUID", .string(uuid)), ("authnKeyPub", .string(key)), ("rootCA", .string(rootCA))]).serialized()
    }

    /// Private metadata with the Isthmus additions.
    static func privateJSON(
        apiHost: String = "api.k8s-a.example.com", network: String = "network-a",
        gateways: [(String, Int)] = [("203.0.113.10", 15443)],
        clusterDomain: String? = "cluster.local", pods: String? = "10.111.0.0/16", services: String? = "10.222.0.0/16"
    ) -> String {
        var members: [(String, JSON)] = [
            ("apiHost", .string(apiHost)), ("networkName", .string(network)),
            ("ingressGateways", .array(gateways.map { .object([("address", .string($0.0)), ("port", .int($0.1))]) })),
        ]
        if let clusterDomain { members.append(("clusterDomain", .string(clusterDomain))) }
        if let pods { members.append(("podSubnetCIDR", .string(pods))) }
        if let services { members.append(("serviceSubnetCIDR", .string(services))) }
        return JSON.object(members).serialized()
    }

    static func publicMetadata(uuid: String = uuidA, key: SigningKeyPair = keyA, rootCA: String = rootCA_A) -> PublicMetadata {
        // Built from fixtures that are valid by construction.
        try! PublicMetadata(json: Array(publicJSON(uuid: uuid, key: key.publicKey.pemRepresentation, rootCA: rootCA).utf8))
    }

    static func privateMetadata(
        apiHost: String = "api.k8s-a.example.com", network: String = "network-a",
        gateways: [(String, Int)] = [("203.0.113.10", 15443)],
        clusterDomain: String? = "cluster.local", pods: String? = "10.111.0.0/16", services: String? = "10.222.0.0/16"
    ) -> PrivateMetadata {
        try! PrivateMetadata(json: Array(privateJSON(
            apiHost: apiHost, network: network, gateways: gateways, clusterDomain: clusterDomain, pods: pods, services: services).utf8))
    }

    /// An IstioMulticluster object as the API server returns it.
    static func multiclusterJSON(name: String, spec: JSON, generation: Int = 1, created: String = "2026-11-25T10:00:00Z", status: JSON? = nil) -> JSON {
        var object: JSON = .object([
            ("apiVersion", .string("deckhouse.io/v1alpha1")), ("kind", .string("IstioMulticluster")),
            ("metadata", .object([("name", .string(name)), ("generation", .int(generation)), ("creationTimestamp", .string(created))])),
            ("spec", spec),
        ])
        if let status { object["status"] = status }
        return object
    }

    static func parse(_ text: String) -> JSON { try! JSON(parsing: text) }
}
