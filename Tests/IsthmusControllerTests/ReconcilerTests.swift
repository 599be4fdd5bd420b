import IsthmusController
import IsthmusKubeTypes
import IsthmusTrust
import Testing
import Yams

/// The controller runs in cluster B and peers with A (and sometimes C).
@Suite("Reconcile plans")
struct ReconcilerTests {
    static let t0: Int64 = 1_800_000_000
    static let configuration = ControllerConfiguration(
        local: LocalIdentity(clusterUUID: Fixtures.uuidB, signingKey: Fixtures.keyB),
        networking: try! ClusterNetworking(clusterDomain: "cluster.local", podSubnetCIDR: "10.112.0.0/16", serviceSubnetCIDR: "10.223.0.0/16"),
        localNetworkName: "network-b", localIstioClusterID: "cluster-b")
    static let reconciler = Reconciler(configuration: configuration)

    static func object(_ name: String = "cluster-a", endpoint: String = "https://istio.k8s-a.example.com/metadata/",
                       generation: Int = 1, created: String = "2026-11-25T10:00:00Z", extraSpec: [(String, JSON)] = []) -> IstioMulticluster {
        try! IstioMulticluster(json: Fixtures.multiclusterJSON(
            name: name, spec: .object([("metadataEndpoint", .string(endpoint))] + extraSpec), generation: generation, created: created))
    }

    static func fetched(_ pub: PublicMetadata = Fixtures.publicMetadata(), _ priv: PrivateMetadata = Fixtures.privateMetadata(), at: Int64 = t0) -> PeerFetch {
        PeerFetch(publicMetadata: .fetched(pub, at: at), privateMetadata: .fetched(priv, at: at))
    }

    static func condition(_ state: ObservedState, _ name: String, _ type: String) -> Condition? {
        state.multiclusters.first { $0.name == name }?.status?["conditions"]?.arrayValue?
            .compactMap(Condition.init(json:)).first { $0.type == type }
    }

    static func trustedPeers(_ state: ObservedState) throws -> TrustedPeers {
        let secret = try #require(state.secrets.first { $0.name == "isthmus-trusted-peers" })
        return try TrustedPeers(json: try #require(secret.data["peers.json"]))
    }

    static func remoteSecret(_ state: ObservedState, _ name: String = "cluster-a") -> SecretObject? {
        state.secrets.first { $0.name == "istio-remote-secret-\(name)" }
    }

    /// Plans, checks the plan is idempotent, and returns the applied state.
    static func settle(_ state: ObservedState, at now: Int64) -> (actions: [ReconcileAction], state: ObservedState) {
        let actions = reconciler.plan(current: state, now: now)
        let next = state.applying(actions)
        let again = reconciler.plan(current: next, now: now)
        #expect(again.isEmpty, "re-planning after applying must yield nothing, got \(again)")
        return (actions, next)
    }

    @Test("before any fetch: an empty trusted peers file, the mesh networks and Pending status")
    func firstRound() throws {
        let (actions, state) = Self.settle(ObservedState(multiclusters: [Self.object()]), at: Self.t0)
        #expect(actions.count == 3)
        #expect(try Self.trustedPeers(state).isEmpty)
        #expect(Self.remoteSecret(state) == nil)
        #expect(Self.condition(state, "cluster-a", "PublicMetadataFetched")?.status == .unknown)
        #expect(Self.condition(state, "cluster-a", "PublicMetadataFetched")?.reason == "Pending")
        let ready = try #require(Self.condition(state, "cluster-a", "Ready"))
        #expect(ready.status == .false && ready.reason == "PeerNotTrusted")
        #expect(ready.lastTransitionTime == "2027-01-15T08:00:00Z")
        #expect(ready.observedGeneration == 1)
    }

    @Test("a successful fetch trusts the peer, writes its remote secret, mesh networks and a Ready status")
    func successfulFetch() throws {
        var state = ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()])
        let (actions, settled) = Self.settle(state, at: Self.t0)
        state = settled
        #expect(actions.contains { if case .createSecret(let s) = $0 { s.name == "istio-remote-secret-cluster-a" } else { false } })

        let trusted = try Self.trustedPeers(state)
        #expect(trusted.clusterUUIDs == [Fixtures.uuidA])
        #expect(trusted[Fixtures.uuidA]?.keys == [Fixtures.keyA.publicKey])

        let secret = try #require(Self.remoteSecret(state))
        #expect(secret.annotations["networking.istio.io/cluster"] == Fixtures.uuidA)
        let kubeconfig = try #require(RemoteKubeconfig(yaml: String(decoding: secret.data[Fixtures.uuidA] ?? [], as: UTF8.self)))
        #expect(kubeconfig.server == "https://api.k8s-a.example.com")

        for type in ConditionType.all {
            #expect(Self.condition(state, "cluster-a", type)?.status == .true, "\(type)")
        }
        let status = try #require(state.multiclusters[0].status)
        #expect(status.value(at: ["metadataCache", "public", "clusterUUID"])?.stringValue == Fixtures.uuidA)
        #expect(status.value(at: ["metadataCache", "private", "apiHost"])?.stringValue == "api.k8s-a.example.com")
        #expect(status.value(at: ["metadataCache", "publicLastFetchTimestamp"])?.stringValue == "2027-01-15T08:00:00Z")
        #expect(status.value(at: ["metadataCache", "privateLastFetchTimestamp"])?.stringValue == "2027-01-15T08:00:00Z")

        let mesh = try #require(state.configMaps.first { $0.name == "isthmus-mesh-networks" })
        let networks = try #require(try Yams.load(yaml: mesh.data["meshNetworks"] ?? "") as? [String: Any])
        let byName = try #require(networks["networks"] as? [String: Any])
        #expect(Set(byName.keys) == ["network-a", "network-b"])
        let a = try #require(byName["network-a"] as? [String: Any])
        #expect((a["endpoints"] as? [[String: String]]) == [["fromRegistry": Fixtures.uuidA]])
        let gateways = try #require(a["gateways"] as? [[String: Any]])
        #expect(gateways.first?["address"] as? String == "203.0.113.10")
        #expect(gateways.first?["port"] as? Int == 15443)
    }

    @Test("a settled system plans nothing; a restarted controller rewrites nothing")
    func idempotentAndRestart() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        // A day later, the same documents fetched again: only the fetch timestamps move.
        var refetch = settled
        refetch.fetches = ["cluster-a": Self.fetched(at: Self.t0 + 86_400)]
        let actions = Self.reconciler.plan(current: refetch, now: Self.t0 + 86_400)
        #expect(actions.count == 1)
        guard case .patchStatus(_, let status)? = actions.first else {
            Issue.record("expected only a status patch, got \(actions)")
            return
        }
        #expect(status.value(at: ["metadataCache", "publicLastFetchTimestamp"])?.stringValue == "2027-01-16T08:00:00Z")
        // A new process (a fresh Reconciler) sees the same objects: nothing to do.
        let restarted = Reconciler(configuration: Self.configuration)
        #expect(restarted.plan(current: settled, now: Self.t0 + 3 * 86_400).isEmpty)
    }

    @Test("the remote secret is re-minted only after two thirds of its lifetime")
    func remintSchedule() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        let policy = APITokenPolicy()
        #expect(Self.reconciler.plan(current: settled, now: Self.t0 + policy.lifetime - policy.remintThreshold).isEmpty)
        let late = Self.reconciler.plan(current: settled, now: Self.t0 + policy.lifetime - policy.remintThreshold + 1)
        #expect(late.count == 1)
        guard case .updateSecret(let secret)? = late.first else {
            Issue.record("expected the remote secret's update, got \(late)")
            return
        }
        #expect(secret.name == "istio-remote-secret-cluster-a")
    }

    @Test("an endpoint that fails keeps the last known key and remote secret, and says so")
    func endpointDown() throws {
        var (_, state) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        let before = state.secrets
        state.fetches = ["cluster-a": PeerFetch(publicMetadata: .failed(.unreachable("connection refused"), at: Self.t0 + 60))]
        let (actions, after) = Self.settle(state, at: Self.t0 + 60)
        #expect(actions.count == 1, "only the status changes: \(actions)")
        #expect(after.secrets == before)
        let publicCondition = try #require(Self.condition(after, "cluster-a", "PublicMetadataFetched"))
        #expect(publicCondition.status == .false && publicCondition.reason == "EndpointUnreachable")
        #expect(publicCondition.message.contains("https://istio.k8s-a.example.com/metadata/public/public.json"))
        #expect(publicCondition.message.contains("connection refused"))
        #expect(publicCondition.message.contains("keeping the key of peer \(Fixtures.uuidA)"))
        let ready = try #require(Self.condition(after, "cluster-a", "Ready"))
        #expect(ready.status == .false && ready.reason == "MetadataStale")
        #expect(try Self.trustedPeers(after).clusterUUIDs == [Fixtures.uuidA])

        // Still failing a minute later with another error: the transition time stays.
        var still = after
        still.fetches = ["cluster-a": PeerFetch(publicMetadata: .failed(.httpStatus(code: 502, message: nil), at: Self.t0 + 120))]
        let (_, later) = Self.settle(still, at: Self.t0 + 120)
        let laterCondition = try #require(Self.condition(later, "cluster-a", "PublicMetadataFetched"))
        #expect(laterCondition.reason == "HTTPError")
        #expect(laterCondition.lastTransitionTime == publicCondition.lastTransitionTime)

        // Recovery.
        var back = later
        back.fetches = ["cluster-a": Self.fetched(at: Self.t0 + 180)]
        let (_, recovered) = Self.settle(back, at: Self.t0 + 180)
        #expect(Self.condition(recovered, "cluster-a", "Ready")?.status == .true)
        #expect(Self.condition(recovered, "cluster-a", "Ready")?.lastTransitionTime == "2027-01-15T08:03:00Z")
    }

    @Test("a peer whose clusterUUID changes moves trust to the new UUID, and the condition says so")
    func uuidChange() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        var state = settled
        let rebuilt = Fixtures.publicMetadata(uuid: Fixtures.uuidC, key: SigningKeyPair(), rootCA: Fixtures.rootCA_A)
        state.fetches = ["cluster-a": Self.fetched(rebuilt, at: Self.t0 + 60)]
        let (_, after) = Self.settle(state, at: Self.t0 + 60)
        #expect(try Self.trustedPeers(after).clusterUUIDs == [Fixtures.uuidC])
        #expect(Self.condition(after, "cluster-a", "PublicMetadataFetched")?.message.contains("changed from \(Fixtures.uuidA)") == true)
        let secret = try #require(Self.remoteSecret(after))
        #expect(Array(secret.data.keys) == [Fixtures.uuidC])
        #expect(secret.annotations["networking.istio.io/cluster"] == Fixtures.uuidC)
    }

    @Test("status patches are merge patches: a dropped field is nulled, a foreign field is not a change")
    func mergePatchSemantics() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        // Someone else's field inside the cache (Deckhouse writes private.ca) does not cause a write.
        var foreign = settled
        foreign.multiclusters[0].status?.setValue(.string(""), at: ["metadataCache", "private", "ca"])
        #expect(Self.reconciler.plan(current: foreign, now: Self.t0 + 1).isEmpty)
        // The peer stops publishing clusterDomain: the cached value must not linger.
        var dropped = foreign
        dropped.fetches = ["cluster-a": Self.fetched(Fixtures.publicMetadata(), Fixtures.privateMetadata(clusterDomain: nil), at: Self.t0 + 2)]
        let (actions, after) = Self.settle(dropped, at: Self.t0 + 2)
        guard case .patchStatus(_, let patch)? = actions.last else {
            Issue.record("expected a status patch, got \(actions)")
            return
        }
        #expect(patch.value(at: ["metadataCache", "private", "clusterDomain"]) == .null)
        #expect(after.multiclusters[0].status?.value(at: ["metadataCache", "private", "clusterDomain"]) == nil)
        #expect(after.multiclusters[0].status?.value(at: ["metadataCache", "private", "ca"]) == .string(""))
    }

    @Test("a rejected peer's cache is removed from the status")
    func rejectedCacheRemoved() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        var state = settled
        let me = Fixtures.publicMetadata(uuid: Fixtures.uuidB, key: Fixtures.keyB, rootCA: Fixtures.rootCA_B)
        state.fetches = ["cluster-a": Self.fetched(me, at: Self.t0 + 60)]
        let (_, after) = Self.settle(state, at: Self.t0 + 60)
        #expect(after.multiclusters[0].status?.value(at: ["metadataCache", "public"]) == nil)
        #expect(try Self.trustedPeers(after).isEmpty)
        #expect(Self.remoteSecret(after) == nil)
    }

    @Test("malformed metadata on first contact writes nothing for the peer")
    func malformedFirstContact() throws {
        let failure = FetchFailure.invalidDocument(MetadataError(document: .public, field: "authnKeyPub", problem: "no PEM block found"))
        let state = ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": PeerFetch(publicMetadata: .failed(failure, at: Self.t0))])
        let (_, after) = Self.settle(state, at: Self.t0)
        #expect(try Self.trustedPeers(after).isEmpty)
        #expect(Self.remoteSecret(after) == nil)
        let condition = try #require(Self.condition(after, "cluster-a", "PublicMetadataFetched"))
        #expect(condition.reason == "InvalidMetadata")
        #expect(condition.message.contains("public metadata: authnKeyPub: no PEM block found"))
        #expect(condition.message.contains("not trusted until this succeeds"))
    }

    @Test("a peer refusing our token leaves it trusted but without a remote secret")
    func privateRefused() throws {
        let fetch = PeerFetch(publicMetadata: .fetched(Fixtures.publicMetadata(), at: Self.t0),
                              privateMetadata: .failed(.refused(code: 401, message: nil), at: Self.t0))
        let (_, after) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": fetch]), at: Self.t0)
        #expect(try Self.trustedPeers(after).clusterUUIDs == [Fixtures.uuidA])
        #expect(Self.remoteSecret(after) == nil)
        #expect(Self.condition(after, "cluster-a", "PrivateMetadataFetched")?.reason == "TokenRefused")
        #expect(Self.condition(after, "cluster-a", "Ready")?.reason == "NoRemoteSecret")
    }

    @Test("overlapping service subnets: RequirementsMet=False, no remote secret, trust kept")
    func requirementsViolation() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        #expect(Self.remoteSecret(settled) != nil)
        var state = settled
        state.fetches = ["cluster-a": Self.fetched(Fixtures.publicMetadata(), Fixtures.privateMetadata(services: "10.223.0.0/20"), at: Self.t0 + 60)]
        let (actions, after) = Self.settle(state, at: Self.t0 + 60)
        #expect(actions.contains(.deleteSecret(namespace: "istio-system", name: "istio-remote-secret-cluster-a")))
        let requirements = try #require(Self.condition(after, "cluster-a", "RequirementsMet"))
        #expect(requirements.status == .false && requirements.reason == "ServiceSubnetOverlap")
        #expect(requirements.message.contains("10.223.0.0/16") && requirements.message.contains("10.223.0.0/20"))
        #expect(Self.condition(after, "cluster-a", "Ready")?.reason == "RequirementsNotMet")
        #expect(try Self.trustedPeers(after).clusterUUIDs == [Fixtures.uuidA])
    }

    @Test("different clusterDomain: RequirementsMet=False naming both domains")
    func domainMismatch() throws {
        let fetch = Self.fetched(Fixtures.publicMetadata(), Fixtures.privateMetadata(clusterDomain: "corp.local"))
        let (_, after) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": fetch]), at: Self.t0)
        let requirements = try #require(Self.condition(after, "cluster-a", "RequirementsMet"))
        #expect(requirements.reason == "ClusterDomainMismatch")
        #expect(requirements.message.contains("\"cluster.local\"") && requirements.message.contains("\"corp.local\""))
    }

    @Test("deleting the IstioMulticluster removes its peer, remote secret and network")
    func deletion() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        var state = settled
        state.multiclusters = []
        let (actions, after) = Self.settle(state, at: Self.t0 + 10)
        #expect(actions.contains(.deleteSecret(namespace: "istio-system", name: "istio-remote-secret-cluster-a")))
        #expect(try Self.trustedPeers(after).isEmpty)
        #expect(Self.remoteSecret(after) == nil)
        #expect(after.configMaps.first?.data["meshNetworks"]?.contains("network-a") == false)
    }

    @Test("Secrets not labelled as ours are never deleted")
    func foreignSecretsKept() {
        let foreign = SecretObject(namespace: "istio-system", name: "istio-remote-secret-manual",
                                   labels: ["istio/multiCluster": "true", "isthmus.io/remote-secret": "true"], data: ["x": [1]])
        let actions = Self.reconciler.plan(current: ObservedState(multiclusters: [], secrets: [foreign]), now: Self.t0)
        #expect(!actions.contains(.deleteSecret(namespace: "istio-system", name: "istio-remote-secret-manual")))
    }

    @Test("the mesh networks can share Istio's own ConfigMap: other keys are kept")
    func sharedMeshConfigMap() throws {
        var configuration = Self.configuration
        configuration.meshNetworksConfigMapName = "istio"
        let reconciler = Reconciler(configuration: configuration)
        let istio = ConfigMapObject(namespace: "istio-system", name: "istio", data: ["mesh": "defaultConfig: {}\n"], resourceVersion: "7")
        let actions = reconciler.plan(current: ObservedState(multiclusters: [], configMaps: [istio]), now: Self.t0)
        let update = try #require(actions.compactMap { if case .updateConfigMap(let c) = $0 { c } else { nil } }.first)
        #expect(update.data["mesh"] == "defaultConfig: {}\n")
        #expect(update.data["meshNetworks"]?.hasPrefix("networks:") == true)
        #expect(update.resourceVersion == "7")
        #expect(reconciler.plan(current: ObservedState(multiclusters: [], configMaps: [update]), now: Self.t0)
            .allSatisfy { if case .updateConfigMap = $0 { false } else { true } })
    }

    @Test("two objects claiming one peer: the older keeps it, the newer is told why")
    func duplicatePeer() throws {
        let older = Self.object("cluster-a", created: "2026-11-25T10:00:00Z")
        let newer = Self.object("also-a", endpoint: "https://other.example.com/metadata", created: "2026-11-25T11:00:00Z")
        let state = ObservedState(multiclusters: [newer, older], fetches: ["cluster-a": Self.fetched(), "also-a": Self.fetched()])
        let (_, after) = Self.settle(state, at: Self.t0)
        #expect(Self.condition(after, "cluster-a", "Ready")?.status == .true)
        let rejected = try #require(Self.condition(after, "also-a", "PublicMetadataFetched"))
        #expect(rejected.reason == "ClusterUUIDRejected")
        #expect(rejected.message.contains("IstioMulticluster \"cluster-a\""))
        #expect(Self.remoteSecret(after, "also-a") == nil)
        #expect(try Self.trustedPeers(after).count == 1)
    }

    @Test("an endpoint that turns out to be this cluster is refused")
    func selfPeer() throws {
        let me = Fixtures.publicMetadata(uuid: Fixtures.uuidB, key: Fixtures.keyB, rootCA: Fixtures.rootCA_B)
        let (_, after) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched(me)]), at: Self.t0)
        #expect(Self.condition(after, "cluster-a", "PublicMetadataFetched")?.message.contains("this cluster's own UUID") == true)
        #expect(try Self.trustedPeers(after).isEmpty)
        #expect(Self.remoteSecret(after) == nil)
    }

    @Test("an invalid spec is reported in the object's status, nothing else is written for it")
    func invalidSpec() throws {
        let bad = try IstioMulticluster(json: Fixtures.multiclusterJSON(name: "broken", spec: .object([("metadataEndpoint", .string("ftp://x"))])))
        let (_, after) = Self.settle(ObservedState(multiclusters: [bad]), at: Self.t0)
        let ready = try #require(Self.condition(after, "broken", "Ready"))
        #expect(ready.reason == "InvalidSpec")
        #expect(ready.message.contains("spec.metadataEndpoint: must start with https://"))
        #expect(try Self.trustedPeers(after).isEmpty)
    }

    @Test("a spec change updates observedGeneration on the conditions")
    func generation() throws {
        let (_, settled) = Self.settle(ObservedState(multiclusters: [Self.object()], fetches: ["cluster-a": Self.fetched()]), at: Self.t0)
        var state = settled
        state.multiclusters[0].generation = 2
        state.fetches = ["cluster-a": Self.fetched(at: Self.t0 + 5)]
        let (_, after) = Self.settle(state, at: Self.t0 + 5)
        #expect(Self.condition(after, "cluster-a", "Ready")?.observedGeneration == 2)
        #expect(after.multiclusters[0].status?["observedGeneration"]?.intValue == 2)
    }

    @Test("mesh networks are sorted: the same peers in any order give the same bytes")
    func meshNetworksStable() throws {
        let pubC = Fixtures.publicMetadata(uuid: Fixtures.uuidC, key: SigningKeyPair(), rootCA: Fixtures.rootCA_A)
        let privA = Fixtures.privateMetadata(gateways: [("203.0.113.20", 15443), ("203.0.113.10", 15443)], pods: "10.1.0.0/16", services: "10.2.0.0/16")
        let privC = Fixtures.privateMetadata(apiHost: "api.c", network: "network-a", gateways: [("198.51.100.1", 15443)], pods: "10.3.0.0/16", services: "10.4.0.0/16")
        let a = Self.object("cluster-a"), c = Self.object("cluster-c", endpoint: "https://c.example.com/metadata")
        let fetches = ["cluster-a": Self.fetched(Fixtures.publicMetadata(), privA), "cluster-c": Self.fetched(pubC, privC)]
        let one = Self.reconciler.desiredState(ObservedState(multiclusters: [a, c], fetches: fetches), now: Self.t0)
        let two = Self.reconciler.desiredState(ObservedState(multiclusters: [c, a], fetches: fetches), now: Self.t0)
        let yaml = try #require(one.meshNetworks.data["meshNetworks"])
        #expect(yaml == two.meshNetworks.data["meshNetworks"])
        let expected = """
            networks:
              "network-a":
                endpoints:
                - fromRegistry: "\(Fixtures.uuidA)"
                - fromRegistry: "\(Fixtures.uuidC)"
                gateways:
                - address: "198.51.100.1"
                  port: 15443
                - address: "203.0.113.10"
                  port: 15443
                - address: "203.0.113.20"
                  port: 15443
              "network-b":
                endpoints:
                - fromRegistry: "cluster-b"

            """
        #expect(yaml == expected)
    }

    @Test("enableIngressGateway: false leaves the peer's gateways out")
    func gatewaysDisabled() throws {
        let a = Self.object(extraSpec: [("enableIngressGateway", .bool(false))])
        let desired = Self.reconciler.desiredState(ObservedState(multiclusters: [a], fetches: ["cluster-a": Self.fetched()]), now: Self.t0)
        let yaml = try #require(desired.meshNetworks.data["meshNetworks"])
        #expect(yaml.contains(Fixtures.uuidA))
        #expect(!yaml.contains("203.0.113.10"))
    }
}
