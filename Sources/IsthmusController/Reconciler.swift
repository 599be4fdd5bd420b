import IsthmusKubeTypes
import IsthmusTrust
import Yams

/// Everything the controller is told once, at start.
public struct ControllerConfiguration: Sendable {
    public var local: LocalIdentity
    /// This cluster's clusterDomain and subnets, for the requirements check.
    public var networking: ClusterNetworking
    /// This cluster's network name; with ``localIstioClusterID`` it puts
    /// the local registry into the mesh networks.
    public var localNetworkName: String?
    /// istiod's own cluster ID (`values.global.multiCluster.clusterName`).
    public var localIstioClusterID: String?
    /// Where istiod reads remote secrets and the mesh networks ConfigMap.
    public var istioNamespace: String
    /// The trusted peers Secret the proxy and the metadata service mount.
    public var trustedPeersSecretNamespace: String
    public var trustedPeersSecretName: String
    public var trustedPeersSecretKey: String
    public var meshNetworksConfigMapName: String
    public var meshNetworksConfigMapKey: String
    public var tokenPolicy: APITokenPolicy
    /// When true (the default), a peer that fails the seed's requirements
    /// gets no remote secret: istiod would otherwise route by addresses
    /// that mean different pods in the two clusters. Its key stays trusted.
    public var enforceRequirements: Bool

    public init(
        local: LocalIdentity, networking: ClusterNetworking = ClusterNetworking(),
        localNetworkName: String? = nil, localIstioClusterID: String? = nil,
        istioNamespace: String = "istio-system",
        trustedPeersSecretNamespace: String = "isthmus-system",
        trustedPeersSecretName: String = "isthmus-trusted-peers",
        trustedPeersSecretKey: String = "peers.json",
        meshNetworksConfigMapName: String = "isthmus-mesh-networks",
        meshNetworksConfigMapKey: String = "meshNetworks",
        tokenPolicy: APITokenPolicy = APITokenPolicy(), enforceRequirements: Bool = true
    ) {
        self.local = local
        self.networking = networking
        self.localNetworkName = localNetworkName
        self.localIstioClusterID = localIstioClusterID
        self.istioNamespace = istioNamespace
        self.trustedPeersSecretNamespace = trustedPeersSecretNamespace
        self.trustedPeersSecretName = trustedPeersSecretName
        self.trustedPeersSecretKey = trustedPeersSecretKey
        self.meshNetworksConfigMapName = meshNetworksConfigMapName
        self.meshNetworksConfigMapKey = meshNetworksConfigMapKey
        self.tokenPolicy = tokenPolicy
        self.enforceRequirements = enforceRequirements
    }
}

/// The outcome of one fetch of one document.
public enum FetchResult<Document: Sendable & Hashable>: Sendable, Hashable {
    case fetched(Document, at: Int64)
    case failed(FetchFailure, at: Int64)
}

/// What was fetched for one IstioMulticluster in this round; nil means
/// "not attempted" (not due yet), and the stored status stands.
public struct PeerFetch: Sendable, Hashable {
    public var publicMetadata: FetchResult<PublicMetadata>?
    public var privateMetadata: FetchResult<PrivateMetadata>?

    public init(publicMetadata: FetchResult<PublicMetadata>? = nil, privateMetadata: FetchResult<PrivateMetadata>? = nil) {
        self.publicMetadata = publicMetadata
        self.privateMetadata = privateMetadata
    }
}

/// What the controller knows at the start of a reconcile: the objects as
/// the informers hold them, and this round's fetch results.
public struct ObservedState: Sendable {
    public var multiclusters: [IstioMulticluster]
    /// By IstioMulticluster name.
    public var fetches: [String: PeerFetch]
    /// The trusted peers Secret and the Secrets in the Istio namespace
    /// labelled as ours (others are never touched).
    public var secrets: [SecretObject]
    public var configMaps: [ConfigMapObject]

    public init(multiclusters: [IstioMulticluster], fetches: [String: PeerFetch] = [:],
                secrets: [SecretObject] = [], configMaps: [ConfigMapObject] = []) {
        self.multiclusters = multiclusters
        self.fetches = fetches
        self.secrets = secrets
        self.configMaps = configMaps
    }

    func secret(_ namespace: String, _ name: String) -> SecretObject? {
        secrets.first { $0.namespace == namespace && $0.name == name }
    }

    func configMap(_ namespace: String, _ name: String) -> ConfigMapObject? {
        configMaps.first { $0.namespace == namespace && $0.name == name }
    }

    /// The state once `actions` have succeeded, with fetch results consumed:
    /// what the informers would show on the next round. For tests and dry
    /// runs; resourceVersions are not simulated.
    public func applying(_ actions: [ReconcileAction]) -> ObservedState {
        var next = self
        next.fetches = [:]
        for action in actions {
            switch action {
            case .createSecret(let s), .updateSecret(let s):
                next.secrets.removeAll { $0.namespace == s.namespace && $0.name == s.name }
                next.secrets.append(s)
            case .deleteSecret(let namespace, let name):
                next.secrets.removeAll { $0.namespace == namespace && $0.name == name }
            case .createConfigMap(let c), .updateConfigMap(let c):
                next.configMaps.removeAll { $0.namespace == c.namespace && $0.name == c.name }
                next.configMaps.append(c)
            case .patchStatus(let name, let status):
                guard let index = next.multiclusters.firstIndex(where: { $0.name == name }) else { continue }
                next.multiclusters[index].status = (next.multiclusters[index].status ?? .object([])).mergePatched(with: status)
            }
        }
        return next
    }
}

/// One write the controller wants. Updates carry the resourceVersion read,
/// so a concurrent change fails with a Conflict and is re-planned.
public enum ReconcileAction: Sendable, Hashable {
    case createSecret(SecretObject)
    case updateSecret(SecretObject)
    case deleteSecret(namespace: String, name: String)
    case createConfigMap(ConfigMapObject)
    case updateConfigMap(ConfigMapObject)
    /// A JSON merge patch (RFC 7386) of `status` on the IstioMulticluster's
    /// status subresource. Cache entries that must go are `null`.
    case patchStatus(multicluster: String, status: JSON)
}

/// The controller's view of one IstioMulticluster after a round.
public struct PeerEvaluation: Sendable {
    public var name: String
    /// The status as a merge patch (RFC 7386): what the object's status
    /// should say, with `null` for members that must go.
    public var status: JSON
    public var conditions: [Condition]
    /// The peer as it goes into the trusted peers file; nil if not trusted.
    public var trustedPeer: TrustedPeer?
    public var privateMetadata: PrivateMetadata?
    public var requirements: RequirementsCheck?
    /// The remote secret to hold; nil means none (an existing one is deleted).
    public var remoteSecret: SecretObject?
    /// `exp` of the API token in ``remoteSecret``, for the expiry metric.
    public var apiTokenExpiresAt: Int64?
    public var enableIngressGateway: Bool
}

/// Everything the cluster should hold after a round.
public struct DesiredState: Sendable {
    public var peers: [PeerEvaluation]
    public var trustedPeers: TrustedPeers
    public var trustedPeersSecret: SecretObject
    public var remoteSecrets: [SecretObject]
    public var meshNetworks: ConfigMapObject
}

/// The IstioMulticluster controller's decisions, free of I/O: given what
/// is observed and fetched, what status, Secrets and ConfigMap should
/// exist, and the writes that get there.
public struct Reconciler: Sendable {
    public var configuration: ControllerConfiguration

    public init(configuration: ControllerConfiguration) {
        self.configuration = configuration
    }

    /// The writes that take `current` to the desired state. Empty when
    /// nothing changed, so a periodic reconcile of a settled system
    /// writes nothing, and `plan(current.applying(plan(current)))` is empty.
    public func plan(current: ObservedState, now: Int64) -> [ReconcileAction] {
        let desired = desiredState(current, now: now)
        var actions: [ReconcileAction] = []

        func upsert(_ wanted: SecretObject) {
            if let existing = current.secret(wanted.namespace, wanted.name) {
                guard !satisfies(existing, wanted) else { return }
                var merged = wanted
                merged.labels = existing.labels.merging(wanted.labels) { $1 }
                merged.annotations = existing.annotations.merging(wanted.annotations) { $1 }
                merged.resourceVersion = existing.resourceVersion
                actions.append(.updateSecret(merged))
            } else {
                actions.append(.createSecret(wanted))
            }
        }
        // Trust first: a peer may already be calling with its token.
        upsert(desired.trustedPeersSecret)
        for secret in desired.remoteSecrets { upsert(secret) }

        let wantedNames = Set(desired.remoteSecrets.map(\.name))
        for secret in current.secrets.sorted(by: { $0.name < $1.name })
        where secret.namespace == configuration.istioNamespace && secret.isManagedByController
            && secret.labels[ControllerLabels.remoteSecret] == "true" && !wantedNames.contains(secret.name) {
            actions.append(.deleteSecret(namespace: secret.namespace, name: secret.name))
        }

        let mesh = desired.meshNetworks
        if let existing = current.configMap(mesh.namespace, mesh.name) {
            if !satisfies(existing, mesh) {
                var merged = mesh
                merged.labels = existing.labels.merging(mesh.labels) { $1 }
                merged.annotations = existing.annotations.merging(mesh.annotations) { $1 }
                merged.data = existing.data.merging(mesh.data) { $1 }
                merged.resourceVersion = existing.resourceVersion
                actions.append(.updateConfigMap(merged))
            }
        } else {
            actions.append(.createConfigMap(mesh))
        }

        // Status last, so it describes what was written.
        for peer in desired.peers {
            // Compared as the server will apply it: members we do not write
            // (a Deckhouse `ca`, another writer's fields) are not a change.
            let stored = current.multiclusters.first { $0.name == peer.name }?.status ?? .object([])
            if stored.mergePatched(with: peer.status) != stored { actions.append(.patchStatus(multicluster: peer.name, status: peer.status)) }
        }
        return actions
    }

    /// The desired state for `current` at `now`.
    public func desiredState(_ current: ObservedState, now: Int64) -> DesiredState {
        let renderer = RemoteSecretRenderer(
            local: configuration.local, namespace: configuration.istioNamespace, tokenPolicy: configuration.tokenPolicy)
        // The older object keeps a peer two objects point at.
        let ordered = current.multiclusters.sorted {
            ($0.creationTimestamp, $0.name) < ($1.creationTimestamp, $1.name)
        }
        var claimed: [String: String] = [:]  // peer UUID -> object name
        var peers: [PeerEvaluation] = []
        for multicluster in ordered {
            let evaluation = evaluate(
                multicluster, fetch: current.fetches[multicluster.name] ?? PeerFetch(), claimed: &claimed,
                renderer: renderer, current: current, now: now)
            peers.append(evaluation)
        }
        peers.sort { $0.name < $1.name }

        // Duplicates were refused above, so this cannot throw; an empty set
        // is the safe fallback if it ever did.
        let trusted = (try? TrustedPeers(peers.compactMap(\.trustedPeer))) ?? .empty
        let trustedSecret = SecretObject(
            namespace: configuration.trustedPeersSecretNamespace, name: configuration.trustedPeersSecretName,
            labels: [ControllerLabels.managedBy: ControllerLabels.managedByValue],
            data: [configuration.trustedPeersSecretKey: trusted.encodedJSON()])
        return DesiredState(
            peers: peers, trustedPeers: trusted, trustedPeersSecret: trustedSecret,
            remoteSecrets: peers.compactMap(\.remoteSecret), meshNetworks: meshNetworks(peers))
    }

    // MARK: one peer

    private func evaluate(
        _ multicluster: IstioMulticluster, fetch: PeerFetch, claimed: inout [String: String],
        renderer: RemoteSecretRenderer, current: ObservedState, now: Int64
    ) -> PeerEvaluation {
        let stored = multicluster.status
        let existingConditions = (stored?["conditions"]?.arrayValue ?? []).compactMap(Condition.init(json:))
        func storedCondition(_ type: String) -> ConditionDraft? {
            existingConditions.first { $0.type == type }.map {
                ConditionDraft(type: $0.type, status: $0.status, reason: $0.reason, message: $0.message)
            }
        }
        let cache = stored?["metadataCache"]
        var cachedPublic = cache?["public"].flatMap { try? PublicMetadata(value: $0) }
        var publicTimestamp = cache?["publicLastFetchTimestamp"]?.stringValue
        var cachedPrivate = cache?["private"].flatMap { try? PrivateMetadata(value: $0) }
        var privateTimestamp = cache?["privateLastFetchTimestamp"]?.stringValue

        var drafts: [ConditionDraft] = []
        var trustedPeer: TrustedPeer? = nil
        var requirements: RequirementsCheck? = nil
        var remoteSecret: SecretObject? = nil
        var tokenExpiry: Int64? = nil
        var enableGateways = true

        switch multicluster.spec {
        case .failure(let error):
            let message = "the spec is invalid: \(error); fix the IstioMulticluster"
            drafts = [
                ConditionDraft(type: ConditionType.publicMetadataFetched, status: .unknown, reason: "InvalidSpec", message: message),
                ConditionDraft(type: ConditionType.privateMetadataFetched, status: .unknown, reason: "InvalidSpec", message: message),
                ConditionDraft(type: ConditionType.requirementsMet, status: .unknown, reason: "InvalidSpec", message: message),
                ConditionDraft(type: ConditionType.ready, status: .false, reason: "InvalidSpec", message: message),
            ]
        case .success(let spec):
            enableGateways = spec.enableIngressGateway
            let endpoint = spec.endpoint

            let known = resolvePublic(
                fetch.publicMetadata, cached: cachedPublic, cachedAt: publicTimestamp,
                stored: storedCondition(ConditionType.publicMetadataFetched), endpoint: endpoint,
                claimed: claimed, name: multicluster.name)
            cachedPublic = known.document
            publicTimestamp = known.fetchedAt
            let publicCondition = known.condition
            let publicStale = known.stale
            if let peer = cachedPublic {
                claimed[peer.clusterUUID] = multicluster.name
                trustedPeer = peer.trustedPeer
            }

            let knownPrivate = resolvePrivate(
                fetch.privateMetadata, cached: cachedPublic == nil ? nil : cachedPrivate, cachedAt: privateTimestamp,
                stored: storedCondition(ConditionType.privateMetadataFetched), endpoint: endpoint,
                publicKnown: cachedPublic != nil)
            cachedPrivate = cachedPublic == nil ? nil : knownPrivate.document
            privateTimestamp = knownPrivate.fetchedAt
            let privateCondition = knownPrivate.condition
            let privateStale = knownPrivate.stale

            // Requirements.
            let requirementsCondition: ConditionDraft
            if let known = cachedPrivate {
                let check = RequirementsCheck(local: configuration.networking, peer: known)
                requirements = check
                requirementsCondition = check.condition()
            } else {
                requirementsCondition = ConditionDraft(
                    type: ConditionType.requirementsMet, status: .unknown, reason: "WaitingForPrivateMetadata",
                    message: "checked once the private metadata is fetched")
            }
            let blocked = configuration.enforceRequirements && requirementsCondition.status == .false

            // Remote secret.
            if let peer = cachedPublic, let known = cachedPrivate, !blocked {
                let name = RemoteSecretRenderer.secretName(for: multicluster.name)
                let secret = renderer.render(
                    multiclusterName: multicluster.name, peerClusterUUID: peer.clusterUUID, apiHost: known.apiHost, spec: spec,
                    existing: current.secret(configuration.istioNamespace, name), now: now)
                remoteSecret = secret
                tokenExpiry = secret.data[peer.clusterUUID]
                    .flatMap { RemoteKubeconfig(yaml: String(decoding: $0, as: UTF8.self)) }
                    .flatMap { unverifiedClaims(of: $0.token)?.expiresAt }
            }

            // Ready.
            let ready: ConditionDraft
            if cachedPublic == nil {
                ready = ConditionDraft(type: ConditionType.ready, status: .false, reason: "PeerNotTrusted",
                                       message: "no valid public metadata yet: \(publicCondition.message)")
            } else if cachedPrivate == nil {
                ready = ConditionDraft(type: ConditionType.ready, status: .false, reason: "NoRemoteSecret",
                                       message: "the peer is trusted, but there is no private metadata yet: \(privateCondition.message)")
            } else if blocked {
                ready = ConditionDraft(type: ConditionType.ready, status: .false, reason: "RequirementsNotMet",
                                       message: "no remote secret while the requirements are not met: \(requirementsCondition.message)")
            } else if publicStale || privateStale {
                ready = ConditionDraft(type: ConditionType.ready, status: .false, reason: "MetadataStale",
                                       message: "trust and remote secret are kept from the last good metadata, but fetching fails; see the Fetched conditions")
            } else {
                ready = ConditionDraft(type: ConditionType.ready, status: .true, reason: "Ready",
                                       message: "peer \(cachedPublic?.clusterUUID ?? "") trusted; \(RemoteSecretRenderer.secretName(for: multicluster.name)) in \(configuration.istioNamespace) is current")
            }
            drafts = [publicCondition, privateCondition, requirementsCondition, ready]
        }

        let conditions = mergeConditions(existing: existingConditions, drafts: drafts, generation: multicluster.generation, now: now)
        // Absent entries are written as null so the merge patch removes a
        // cache that must no longer be used (a rejected UUID).
        let cacheMembers: [(String, JSON)] = [
            ("public", cachedPublic?.json ?? .null),
            ("publicLastFetchTimestamp", cachedPublic != nil ? publicTimestamp.map(JSON.string) ?? .null : .null),
            ("private", cachedPrivate.map(Self.privateCachePatch) ?? .null),
            ("privateLastFetchTimestamp", cachedPrivate != nil ? privateTimestamp.map(JSON.string) ?? .null : .null),
        ]
        let status: JSON = .object([
            ("metadataCache", .object(cacheMembers)),
            ("conditions", .array(conditions.map(\.json))),
            ("observedGeneration", .int(multicluster.generation)),
        ])
        return PeerEvaluation(
            name: multicluster.name, status: status, conditions: conditions, trustedPeer: trustedPeer,
            privateMetadata: cachedPrivate, requirements: requirements, remoteSecret: remoteSecret,
            apiTokenExpiresAt: tokenExpiry, enableIngressGateway: enableGateways)
    }

    /// A document after a round: the one to use (fresh or cached), when it
    /// was fetched, its condition, and whether it is kept although the
    /// latest fetch failed.
    struct DocumentOutcome<Document> {
        var document: Document?
        var fetchedAt: String?
        var stale: Bool
        var condition: ConditionDraft
    }

    /// The public document: a fresh one replaces the cache unless its UUID
    /// is refused; a failure keeps the cache (the last known key); no fetch
    /// keeps the stored condition. A cached peer is held to the same
    /// identity checks as a fresh one.
    func resolvePublic(
        _ fetch: FetchResult<PublicMetadata>?, cached: PublicMetadata?, cachedAt: String?, stored: ConditionDraft?,
        endpoint: MetadataEndpoint, claimed: [String: String], name: String
    ) -> DocumentOutcome<PublicMetadata> {
        let type = ConditionType.publicMetadataFetched
        func refused(_ problem: String) -> DocumentOutcome<PublicMetadata> {
            DocumentOutcome(
                document: nil, fetchedAt: nil, stale: false,
                condition: ConditionDraft(type: type, status: .false, reason: FetchFailure.rejected(problem).reason,
                                          message: "GET \(endpoint.publicURL): \(problem)"))
        }
        var outcome: DocumentOutcome<PublicMetadata>
        switch fetch {
        case .fetched(let document, let at)?:
            if let problem = rejection(of: document.clusterUUID, claimed: claimed, name: name) { return refused(problem) }
            // A peer rebuilt under the same endpoint gets a new UUID; say so,
            // since its old UUID's trust and remote secret go away with it.
            let moved = cached.flatMap { $0.clusterUUID != document.clusterUUID ? $0.clusterUUID : nil }
            return DocumentOutcome(
                document: document, fetchedAt: RFC3339.string(unixSeconds: at), stale: false,
                condition: ConditionDraft(type: type, status: .true, reason: "Fetched",
                                          message: "peer \(document.clusterUUID) at \(endpoint.publicURL)"
                                            + (moved.map { " (its clusterUUID changed from \($0))" } ?? "")))
        case .failed(let failure, _)?:
            let kept = cached.map { "; keeping the key of peer \($0.clusterUUID) fetched at \(cachedAt ?? "an earlier time")" }
                ?? "; the peer is not trusted until this succeeds"
            outcome = DocumentOutcome(
                document: cached, fetchedAt: cachedAt, stale: cached != nil,
                condition: ConditionDraft(type: type, status: .false, reason: failure.reason,
                                          message: "GET \(endpoint.publicURL): \(failure)" + kept))
        case nil:
            let condition = stored ?? ConditionDraft(type: type, status: .unknown, reason: "Pending",
                                                     message: "waiting for the first fetch of \(endpoint.publicURL)")
            outcome = DocumentOutcome(document: cached, fetchedAt: cachedAt,
                                      stale: condition.status == .false && cached != nil, condition: condition)
        }
        if let peer = outcome.document, let problem = rejection(of: peer.clusterUUID, claimed: claimed, name: name) {
            return refused(problem)
        }
        return outcome
    }

    /// The private document, by the same rules as the public one (minus the
    /// identity checks, which the public document carries).
    func resolvePrivate(
        _ fetch: FetchResult<PrivateMetadata>?, cached: PrivateMetadata?, cachedAt: String?, stored: ConditionDraft?,
        endpoint: MetadataEndpoint, publicKnown: Bool
    ) -> DocumentOutcome<PrivateMetadata> {
        let type = ConditionType.privateMetadataFetched
        switch fetch {
        case .fetched(let document, let at)?:
            return DocumentOutcome(
                document: document, fetchedAt: RFC3339.string(unixSeconds: at), stale: false,
                condition: ConditionDraft(
                    type: type, status: .true, reason: "Fetched",
                    message: "API host \(MessageText.truncated(document.apiHost, limit: 120)), network \(MessageText.quoted(document.networkName)), \(document.ingressGateways.count) ingress gateway(s)"))
        case .failed(let failure, _)?:
            let kept = cached.map { _ in "; keeping the metadata fetched at \(cachedAt ?? "an earlier time")" }
                ?? "; no remote secret until this succeeds"
            return DocumentOutcome(
                document: cached, fetchedAt: cachedAt, stale: cached != nil,
                condition: ConditionDraft(type: type, status: .false, reason: failure.reason,
                                          message: "GET \(endpoint.privateURL): \(failure)" + kept))
        case nil:
            let condition = stored ?? ConditionDraft(
                type: type, status: .unknown, reason: "Pending",
                message: publicKnown ? "waiting for the first fetch of \(endpoint.privateURL)" : "waiting for the public metadata first")
            return DocumentOutcome(document: cached, fetchedAt: cachedAt,
                                   stale: condition.status == .false && cached != nil, condition: condition)
        }
    }

    /// The private document for the cache, with the optional Isthmus
    /// members the peer no longer publishes set to null, so the merge patch
    /// removes them instead of keeping a stale clusterDomain or subnet.
    static func privateCachePatch(_ metadata: PrivateMetadata) -> JSON {
        var json = metadata.json
        for key in ["clusterDomain", "podSubnetCIDR", "serviceSubnetCIDR"] where json[key] == nil {
            json[key] = .null
        }
        return json
    }

    /// Why `uuid` must not be trusted under `name`, if it must not.
    private func rejection(of uuid: String, claimed: [String: String], name: String) -> String? {
        if uuid == configuration.local.clusterUUID {
            return "clusterUUID \(uuid) is this cluster's own UUID: the endpoint points back at this cluster"
        }
        if let other = claimed[uuid], other != name {
            return "clusterUUID \(uuid) is already the peer of IstioMulticluster \"\(other)\"; delete one of the two"
        }
        return nil
    }

    // MARK: mesh networks

    /// Istio `meshNetworks`: each network's registries and gateways, keys
    /// and lists sorted, so the ConfigMap changes only when an address does.
    func meshNetworks(_ peers: [PeerEvaluation]) -> ConfigMapObject {
        var registries: [String: Set<String>] = [:]
        var gateways: [String: Set<PeerIngressGateway>] = [:]
        if let network = configuration.localNetworkName, !network.isEmpty, let id = configuration.localIstioClusterID {
            registries[network, default: []].insert(id)
        }
        for peer in peers {
            guard peer.remoteSecret != nil, let trusted = peer.trustedPeer, let metadata = peer.privateMetadata,
                !metadata.networkName.isEmpty
            else { continue }
            registries[metadata.networkName, default: []].insert(trusted.clusterUUID)
            if peer.enableIngressGateway {
                gateways[metadata.networkName, default: []].formUnion(metadata.ingressGateways)
            }
        }
        func q(_ s: String) -> Node { Node(s, .implicit, .doubleQuoted) }
        func map(_ pairs: [(Node, Node)]) -> Node { .mapping(Node.Mapping(pairs)) }
        func seq(_ nodes: [Node]) -> Node { .sequence(Node.Sequence(nodes)) }
        let networks: [(Node, Node)] = registries.keys.sorted().map { network in
            var members: [(Node, Node)] = [
                ("endpoints", seq((registries[network] ?? []).sorted().map { map([("fromRegistry", q($0))]) }))
            ]
            let list = (gateways[network] ?? []).sorted()
            if !list.isEmpty {
                members.append(("gateways", seq(list.map { map([("address", q($0.address)), ("port", Node(String($0.port), Tag(.int)))]) })))
            }
            return (q(network), map(members))
        }
        let root = map([("networks", networks.isEmpty ? .mapping(Node.Mapping([], .implicit, .flow)) : map(networks))])
        let yaml = (try? Yams.serialize(node: root, width: -1)) ?? "networks: {}\n"
        return ConfigMapObject(
            namespace: configuration.istioNamespace, name: configuration.meshNetworksConfigMapName,
            labels: [ControllerLabels.managedBy: ControllerLabels.managedByValue],
            data: [configuration.meshNetworksConfigMapKey: yaml])
    }
}
