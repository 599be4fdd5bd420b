import IsthmusController
import IsthmusKubeTypes
import IsthmusTrust
import PropertyBased
import Testing

/// Random histories of fetch outcomes for three peers, checked round by round.
@Suite("Reconcile properties")
struct ReconcilerPropertyTests {
    /// 0: not due, 1-2: a good fetch (two apiHost variants), 3: unreachable,
    /// 4: invalid document, 5: private refused, 6: overlapping subnets,
    /// 7: the object is deleted this round, 8: it is (re)created.
    static let outcome = Gen.int(in: 0...8)
    static let round = zip(outcome, outcome, outcome)
    static let history = round.array(of: 1...12)

    static let names = ["cluster-a", "cluster-c", "cluster-d"]
    static let uuids = [Fixtures.uuidA, Fixtures.uuidC, "d0d0d0d0-0000-4000-8000-000000000000"]
    static let keys = [SigningKeyPair(), SigningKeyPair(), SigningKeyPair()]

    static func fetch(_ index: Int, _ outcome: Int, at time: Int64) -> PeerFetch? {
        let pub = Fixtures.publicMetadata(uuid: uuids[index], key: keys[index], rootCA: Fixtures.rootCA_A)
        let subnets = ["10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"][index]
        switch outcome {
        case 1, 2:
            let priv = Fixtures.privateMetadata(apiHost: "api-\(outcome).\(names[index])", network: "net-\(index)", pods: subnets, services: "10.20\(index).0.0/16")
            return PeerFetch(publicMetadata: .fetched(pub, at: time), privateMetadata: .fetched(priv, at: time))
        case 3:
            return PeerFetch(publicMetadata: .failed(.unreachable("connection refused"), at: time))
        case 4:
            return PeerFetch(publicMetadata: .failed(.invalidDocument(MetadataError(document: .public, field: "rootCA", problem: "missing")), at: time))
        case 5:
            return PeerFetch(publicMetadata: .fetched(pub, at: time), privateMetadata: .failed(.refused(code: 403, message: nil), at: time))
        case 6:
            let priv = Fixtures.privateMetadata(apiHost: "api.\(names[index])", network: "net-\(index)", pods: "10.112.0.0/24", services: "10.20\(index).0.0/16")
            return PeerFetch(publicMetadata: .fetched(pub, at: time), privateMetadata: .fetched(priv, at: time))
        default:
            return nil
        }
    }

    @Test("every round's plan is idempotent, and trust, remote secrets and objects stay consistent")
    func consistentHistories() async {
        await propertyCheck(count: 100, input: Self.history) { history in
            let reconciler = ReconcilerTests.reconciler
            var state = ObservedState(multiclusters: Self.names.map { ReconcilerTests.object($0, endpoint: "https://\($0).example.com/metadata") })
            var everTrusted: Set<String> = []
            for (step, outcomes) in history.enumerated() {
                let now = ReconcilerTests.t0 + Int64(step) * 600
                var fetches: [String: PeerFetch] = [:]
                for (index, outcome) in [outcomes.0, outcomes.1, outcomes.2].enumerated() {
                    let name = Self.names[index]
                    if outcome == 7 {
                        state.multiclusters.removeAll { $0.name == name }
                        everTrusted.remove(Self.uuids[index])
                    } else if outcome == 8, !state.multiclusters.contains(where: { $0.name == name }) {
                        state.multiclusters.append(ReconcilerTests.object(name, endpoint: "https://\(name).example.com/metadata"))
                    } else if let fetch = Self.fetch(index, outcome, at: now) {
                        fetches[name] = fetch
                    }
                }
                state.fetches = fetches
                let actions = reconciler.plan(current: state, now: now)
                state = state.applying(actions)
                #expect(reconciler.plan(current: state, now: now).isEmpty)

                guard let peersSecret = state.secrets.first(where: { $0.name == "isthmus-trusted-peers" }),
                    let trusted = try? TrustedPeers(json: peersSecret.data["peers.json"] ?? [])
                else {
                    Issue.record("no readable trusted peers Secret")
                    return
                }
                let liveNames = Set(state.multiclusters.map(\.name))
                for (index, name) in Self.names.enumerated() where liveNames.contains(name) {
                    let outcome = [outcomes.0, outcomes.1, outcomes.2][index]
                    if [1, 2, 5, 6].contains(outcome) { everTrusted.insert(Self.uuids[index]) }
                }
                // A peer once trusted stays trusted through failures, until its object goes.
                #expect(Set(trusted.clusterUUIDs) == everTrusted)
                for secret in state.secrets where secret.name.hasPrefix("istio-remote-secret-") {
                    let owner = String(secret.name.dropFirst("istio-remote-secret-".count))
                    #expect(liveNames.contains(owner), "remote secret of a deleted object")
                    let uuid = secret.annotations["networking.istio.io/cluster"] ?? ""
                    #expect(trusted[uuid] != nil, "remote secret for an untrusted peer")
                    let ready = ReconcilerTests.condition(state, owner, "RequirementsMet")
                    #expect(ready?.status != .false, "remote secret despite unmet requirements")
                }
            }
        }
    }
}
