import IsthmusKubeTypes
import IsthmusTrust
import Yams

/// How long istiod's API tokens live and when they are replaced.
///
/// istiod rebuilds its whole remote-cluster registry when a remote secret
/// changes, so the token is re-minted only when less than
/// `remintBelowFraction` of `lifetime` is left, and the Secret is otherwise
/// left byte for byte as it is.
public struct APITokenPolicy: Sendable, Hashable {
    /// Token lifetime in seconds (default 7 days).
    public var lifetime: Int64
    /// Re-mint when `exp - now < lifetime * remintBelowFraction` (default 1/3:
    /// a 7-day token is replaced after about 4.7 days, leaving 2.3 days for
    /// a controller outage before istiod loses the peer).
    public var remintBelowFraction: Double

    public init(lifetime: Int64 = 7 * 86_400, remintBelowFraction: Double = 1.0 / 3.0) {
        precondition(lifetime > 0 && remintBelowFraction > 0 && remintBelowFraction <= 1,
                     "token lifetime must be positive and the re-mint fraction in (0, 1]")
        self.lifetime = lifetime
        self.remintBelowFraction = remintBelowFraction
    }

    /// Seconds of validity below which a token is replaced.
    public var remintThreshold: Int64 { Int64((Double(lifetime) * remintBelowFraction).rounded(.up)) }
}

/// This cluster's identity: its UUID and the key its tokens are signed with.
public struct LocalIdentity: Sendable {
    public var clusterUUID: String
    public var signingKey: SigningKeyPair

    public init(clusterUUID: String, signingKey: SigningKeyPair) {
        self.clusterUUID = clusterUUID
        self.signingKey = signingKey
    }

    /// The one-minute token for `GET /private/multicluster.json` on `peer`:
    /// `sub` = this cluster, `aud` = the peer, scope `private-multicluster`.
    public func privateMetadataToken(peerClusterUUID: String, now: Int64, lifetime: Int64 = 60) -> BearerToken {
        BearerToken(mint(
            TokenClaims(subject: clusterUUID, audience: peerClusterUUID, scope: .privateMulticluster, now: now, lifetime: lifetime),
            with: signingKey))
    }

    /// The API token istiod presents to the peer's proxy: `sub` = this
    /// cluster (the caller), `aud` = the peer (the callee), scope `api`.
    public func apiToken(peerClusterUUID: String, now: Int64, lifetime: Int64) -> String {
        mint(TokenClaims(subject: clusterUUID, audience: peerClusterUUID, scope: .api, now: now, lifetime: lifetime),
             with: signingKey)
    }
}

/// What a remote secret's kubeconfig says, compared by meaning so a Secret
/// written by another renderer (Deckhouse, an older Isthmus) is not
/// rewritten only because its YAML is spelt differently.
public struct RemoteKubeconfig: Sendable, Hashable {
    /// Names the cluster, context and user (the IstioMulticluster's name).
    public var name: String
    /// `https://<apiHost>`.
    public var server: String
    /// PEM of the CA (written Base64 as `certificate-authority-data`).
    public var caPEM: String?
    public var insecureSkipTLSVerify: Bool
    public var token: String

    public init(name: String, server: String, caPEM: String?, insecureSkipTLSVerify: Bool, token: String) {
        self.name = name
        self.server = server
        self.caPEM = caPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.token = token
    }

    /// The kubeconfig YAML in the shape of Deckhouse's
    /// `istio_remote_kubeconfig` template. Values are double-quoted so a
    /// name like `123` or `true` stays a string.
    public func yaml() -> String {
        func q(_ s: String) -> Node { Node(s, .implicit, .doubleQuoted) }
        func map(_ pairs: [(Node, Node)]) -> Node { .mapping(Node.Mapping(pairs)) }
        func seq(_ nodes: [Node]) -> Node { .sequence(Node.Sequence(nodes)) }
        var cluster: [(Node, Node)] = [("server", q(server))]
        if let caPEM, !insecureSkipTLSVerify {
            cluster.append(("certificate-authority-data", q(Base64.encodeStandard(caPEM.utf8))))
        }
        if insecureSkipTLSVerify { cluster.append(("insecure-skip-tls-verify", Node("true", Tag(.bool)))) }
        let root = map([
            ("apiVersion", "v1"), ("kind", "Config"),
            ("clusters", seq([map([("cluster", map(cluster)), ("name", q(name))])])),
            ("contexts", seq([map([("context", map([("cluster", q(name)), ("user", q(name))])), ("name", q(name))])])),
            ("current-context", q(name)),
            ("preferences", .mapping(Node.Mapping([], .implicit, .flow))),
            ("users", seq([map([("name", q(name)), ("user", map([("token", q(token))]))])])),
        ])
        // Width -1: never fold, a folded token would still parse but reads badly.
        return (try? Yams.serialize(node: root, width: -1)) ?? ""
    }

    /// From kubeconfig YAML: its current context's cluster and user. Nil
    /// when it is not a kubeconfig with a token user.
    public init?(yaml text: String) {
        guard let root = (try? Yams.compose(yaml: text)) ?? nil, let mapping = root.mapping else { return nil }
        func named(_ list: String, _ name: String) -> Node? {
            mapping[list]?.sequence?.first { $0.mapping?["name"]?.string == name }
        }
        guard let context = mapping["current-context"]?.string,
            let contextNode = named("contexts", context)?.mapping?["context"]?.mapping,
            let clusterName = contextNode["cluster"]?.string, let userName = contextNode["user"]?.string,
            let cluster = named("clusters", clusterName)?.mapping?["cluster"]?.mapping,
            let server = cluster["server"]?.string,
            let token = named("users", userName)?.mapping?["user"]?.mapping?["token"]?.string
        else { return nil }
        var caPEM: String? = nil
        // Empty (or null) is no CA, as the Kubernetes client reads it.
        if let data = cluster["certificate-authority-data"]?.string, !data.isEmpty {
            guard let bytes = Base64.decodeStandard(data.utf8) else { return nil }
            caPEM = String(decoding: bytes, as: UTF8.self)
        }
        self.init(name: context, server: server, caPEM: caPEM,
                  insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"]?.bool ?? false, token: token)
    }
}

/// Reads the claims of a token this controller minted, without verifying
/// it: the question is only whether *we* would mint the same bytes again
/// (see ``RemoteSecretRenderer/reusableToken(in:peerClusterUUID:now:)``).
func unverifiedClaims(of token: String) -> TokenClaims? {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, let payload = Base64.decodeURL(parts[1].utf8),
        let json = try? JSON(parsing: payload),
        let sub = json["sub"]?.stringValue, let aud = json["aud"]?.stringValue,
        let scopeText = json["scope"]?.stringValue, let scope = TokenScope(rawValue: scopeText),
        let exp = json["exp"]?.intValue
    else { return nil }
    return TokenClaims(
        issuer: json["iss"]?.stringValue ?? "", subject: sub, audience: aud, scope: scope,
        notBefore: json["nbf"]?.intValue.map(Int64.init), expiresAt: Int64(exp))
}

/// Renders `istio-remote-secret-<name>` (DESIGN §2): label
/// `istio/multiCluster: "true"`, annotation `networking.istio.io/cluster:
/// <peer UUID>`, `data[<peer UUID>]` = a kubeconfig for `https://<apiHost>`
/// with an `api` token minted by this cluster for the peer.
public struct RemoteSecretRenderer: Sendable {
    public var local: LocalIdentity
    public var namespace: String
    public var tokenPolicy: APITokenPolicy

    public init(local: LocalIdentity, namespace: String, tokenPolicy: APITokenPolicy = APITokenPolicy()) {
        self.local = local
        self.namespace = namespace
        self.tokenPolicy = tokenPolicy
    }

    public static func secretName(for multiclusterName: String) -> String { "istio-remote-secret-\(multiclusterName)" }

    /// The token in `existing` if it may stay: minted by this cluster's
    /// current key for this peer with scope `api` (checked by minting the
    /// same claims again: Ed25519 and our claim encoding are deterministic,
    /// so equal bytes prove the key and the claims), not longer-lived than
    /// the policy allows, and with at least the re-mint threshold left.
    public func reusableToken(in existing: RemoteKubeconfig?, peerClusterUUID: String, now: Int64) -> String? {
        guard let token = existing?.token, let claims = unverifiedClaims(of: token),
            claims.subject == local.clusterUUID, claims.audience == peerClusterUUID, claims.scope == .api,
            let notBefore = claims.notBefore, notBefore <= now,
            claims.expiresAt - notBefore <= tokenPolicy.lifetime,
            claims.expiresAt - now >= tokenPolicy.remintThreshold,
            mint(claims, with: local.signingKey) == token
        else { return nil }
        return token
    }

    /// The desired Secret. When `existing` already says the same thing
    /// (same server, CA, TLS mode and a reusable token), its data bytes are
    /// returned unchanged, so the caller's compare-before-write sees no
    /// change and istiod is left alone.
    public func render(multiclusterName: String, peerClusterUUID: String, apiHost: String, spec: IstioMulticlusterSpec,
                       existing: SecretObject?, now: Int64) -> SecretObject {
        let existingBytes = existing?.data[peerClusterUUID]
        let existingConfig = existingBytes.flatMap { RemoteKubeconfig(yaml: String(decoding: $0, as: UTF8.self)) }
        let token = reusableToken(in: existingConfig, peerClusterUUID: peerClusterUUID, now: now)
            ?? local.apiToken(peerClusterUUID: peerClusterUUID, now: now, lifetime: tokenPolicy.lifetime)
        let wanted = RemoteKubeconfig(
            name: multiclusterName, server: "https://\(apiHost)",
            caPEM: spec.insecureSkipVerify ? nil : spec.ca, insecureSkipTLSVerify: spec.insecureSkipVerify, token: token)
        let bytes: [UInt8]
        if let existingBytes, existingConfig == wanted {
            bytes = existingBytes
        } else {
            bytes = Array(wanted.yaml().utf8)
        }
        return SecretObject(
            namespace: namespace, name: Self.secretName(for: multiclusterName),
            labels: [
                ControllerLabels.istioMultiCluster: "true",
                ControllerLabels.managedBy: ControllerLabels.managedByValue,
                ControllerLabels.remoteSecret: "true",
            ],
            annotations: [
                ControllerLabels.istioClusterAnnotation: peerClusterUUID,
                ControllerLabels.istioMulticlusterAnnotation: multiclusterName,
            ],
            data: [peerClusterUUID: bytes])
    }
}
