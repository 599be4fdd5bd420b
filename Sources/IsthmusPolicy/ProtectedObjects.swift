import IsthmusRequestInfo

/// What no peer is ever served, whatever the policies allow (DESIGN §3 step
/// 4b). Decided after the allowlist and independent of it, so a policy that
/// grants `secrets` (Istio's reader role does, for gateway credentials) or
/// `*` still cannot reach:
///
/// - **every object in the Isthmus namespace**: this cluster's signing key
///   (with it a peer mints tokens as this cluster, accepted by every cluster
///   that trusts it), the trusted peers, the controller's Lease;
/// - **istiod remote secrets** (label `istio/multiCluster=true`, names
///   `istio-remote-secret-*`): they hold this cluster's tokens for its *other*
///   peers, so one peer would become every peer;
/// - **Secrets of type `kubernetes.io/service-account-token`** (legacy
///   ServiceAccount tokens: credentials for this cluster's API server) and
///   **`helm.sh/release.v1`** (rendered charts, often with their secrets).
///
/// Lists and watches are narrowed rather than refused: the exclusions go into
/// the forwarded `fieldSelector` and `labelSelector` (``SelectorNarrowing``),
/// so the API server filters and the body stays its own bytes. A client
/// selector that contradicts them (`type=kubernetes.io/service-account-token`)
/// is ANDed with them and so matches nothing, as the API server answers any
/// empty match. A get by name is refused when the name alone excludes it;
/// otherwise the object's type and labels are checked first
/// (``Decision/checkSecretFirst``, ``judgeSecret(type:labels:)``).
///
/// Pure: no I/O, decided on ``RequestAttributes`` as parsed.
public struct ProtectedObjects: Sendable, Hashable {
    /// The namespace Isthmus itself runs in; nothing in it is ever served.
    public var isthmusNamespace: String

    public static let defaultIsthmusNamespace = "isthmus-system"
    /// The label istiod reads remote secrets by.
    public static let remoteSecretLabel = "istio/multiCluster"
    /// The name `istioctl create-remote-secret` and the Isthmus controller give them.
    public static let remoteSecretNamePrefix = "istio-remote-secret-"
    public static let serviceAccountTokenType = "kubernetes.io/service-account-token"
    public static let helmReleaseType = "helm.sh/release.v1"

    public init(isthmusNamespace: String = ProtectedObjects.defaultIsthmusNamespace) {
        self.isthmusNamespace = isthmusNamespace
    }

    /// Why an object is never served; each is its own 403 reason and metric label.
    public enum Reason: String, Sendable, Hashable, CaseIterable {
        case isthmusNamespace = "isthmus_namespace"
        case remoteSecret = "remote_secret"
        case serviceAccountToken = "service_account_token"
        case helmRelease = "helm_release"

        /// The bounded label of ``isthmus_proxy_denials_total`` and the audit trail.
        public var metricLabel: String { "protected_" + rawValue }
    }

    /// The sentence after `... is forbidden: ` in the 403.
    public func message(_ reason: Reason) -> String {
        switch reason {
        case .isthmusNamespace:
            "objects in the Isthmus namespace \"\(isthmusNamespace)\" (this cluster's signing key, its trusted peers) are never served to a peer"
        case .remoteSecret:
            "istiod remote secrets (label \(Self.remoteSecretLabel)=true, names \(Self.remoteSecretNamePrefix)*) hold this cluster's tokens for other peers and are never served"
        case .serviceAccountToken:
            "Secrets of type \(Self.serviceAccountTokenType) are credentials for this cluster and are never served to a peer"
        case .helmRelease:
            "Secrets of type \(Self.helmReleaseType) (Helm releases) are never served to a peer"
        }
    }

    public enum Decision: Sendable, Hashable {
        /// Nothing protected can be in the answer: forward as parsed.
        case unrestricted
        /// Refused whatever the policy says.
        case refuse(Reason)
        /// A list or watch: forward with these requirements in front of the client's selectors.
        case narrow(SelectorNarrowing)
        /// A get of a Secret by a name nothing excludes: the object's type and
        /// labels decide, so it is looked up (through a list with the name)
        /// before anything is forwarded.
        case checkSecretFirst
    }

    public func decide(_ request: RequestAttributes) -> Decision {
        guard request.isResourceRequest else { return .unrestricted }
        let isCore = request.apiGroup.isEmpty
        // `/api/v1/namespaces/NAME` names the Namespace object itself, which
        // RequestInfo places "in" NAME; the object holds nothing of its contents.
        let isNamespaceObject = isCore && request.resource == "namespaces"
        if !isNamespaceObject && request.namespace == isthmusNamespace {
            return .refuse(.isthmusNamespace)
        }
        let isCollection = request.verb == .list || request.verb == .watch
        var narrowing = SelectorNarrowing()
        if isCore && request.resource == "secrets" {
            if request.name.hasPrefix(Self.remoteSecretNamePrefix) { return .refuse(.remoteSecret) }
            if !isCollection {
                return request.name.isEmpty ? .unrestricted : .checkSecretFirst
            }
            narrowing.fieldRequirements = ["type!=" + Self.serviceAccountTokenType, "type!=" + Self.helmReleaseType]
            narrowing.labelRequirements = [Self.remoteSecretLabel + "!=true"]
        }
        guard isCollection else { return .unrestricted }
        if request.namespace.isEmpty && !Self.isClusterScoped(group: request.apiGroup, resource: request.resource) {
            narrowing.fieldRequirements.insert("metadata.namespace!=" + SelectorNarrowing.escapedFieldValue(isthmusNamespace), at: 0)
        }
        guard !narrowing.isEmpty else { return .unrestricted }
        // A watch of one object by path (`.../secrets/NAME?watch=1`): the API
        // server insists that a field selector it is given names that object.
        if !request.name.isEmpty {
            narrowing.fieldRequirements.append("metadata.name=" + SelectorNarrowing.escapedFieldValue(request.name))
        }
        return .narrow(narrowing)
    }

    /// The verdict on a Secret found by ``Decision/checkSecretFirst``: nil when
    /// it may be served.
    public func judgeSecret(type: String, labels: [String: String]) -> Reason? {
        if labels[Self.remoteSecretLabel] == "true" { return .remoteSecret }
        if type == Self.serviceAccountTokenType { return .serviceAccountToken }
        if type == Self.helmReleaseType { return .helmRelease }
        return nil
    }

    /// The request target that looks up the Secret `name` of a get (a list,
    /// so a missing object is an empty list, never another object).
    public static func secretLookupTarget(namespace: String, name: String) -> String {
        let selector = SelectorNarrowing(fieldRequirements: ["metadata.name=" + SelectorNarrowing.escapedFieldValue(name)])
        return "/api/v1/namespaces/\(namespace)/secrets?" + selector.narrow(query: "")
    }

    /// Whether a resource has no namespace, so `metadata.namespace` is no field
    /// of it (the API server refuses that selector on, e.g., nodes). The
    /// built-in cluster-scoped resources of Kubernetes 1.32 and the common
    /// cluster-scoped custom ones; any other is taken as namespaced, which at
    /// worst makes the API server refuse the list (400), never serve more.
    public static func isClusterScoped(group: String, resource: String) -> Bool {
        clusterScoped[group]?.contains(resource) ?? false
    }

    static let clusterScoped: [String: Set<String>] = [
        "": ["componentstatuses", "namespaces", "nodes", "persistentvolumes"],
        "admissionregistration.k8s.io": [
            "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
            "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
        ],
        "apiextensions.k8s.io": ["customresourcedefinitions"],
        "apiregistration.k8s.io": ["apiservices"],
        "authentication.k8s.io": ["selfsubjectreviews", "tokenreviews"],
        "authorization.k8s.io": ["selfsubjectaccessreviews", "selfsubjectrulesreviews", "subjectaccessreviews"],
        "certificates.k8s.io": ["certificatesigningrequests", "clustertrustbundles"],
        "flowcontrol.apiserver.k8s.io": ["flowschemas", "prioritylevelconfigurations"],
        "internal.apiserver.k8s.io": ["storageversions"],
        "networking.k8s.io": ["ingressclasses", "ipaddresses", "servicecidrs"],
        "node.k8s.io": ["runtimeclasses"],
        "rbac.authorization.k8s.io": ["clusterrolebindings", "clusterroles"],
        "resource.k8s.io": ["deviceclasses", "resourceslices"],
        "scheduling.k8s.io": ["priorityclasses"],
        "storage.k8s.io": ["csidrivers", "csinodes", "storageclasses", "volumeattachments", "volumeattributesclasses"],
        "storagemigration.k8s.io": ["storageversionmigrations"],
        "gateway.networking.k8s.io": ["gatewayclasses"],
        "deckhouse.io": ["istiomulticlusters", "istiofederations"],
    ]
}
