import IsthmusPolicy
import IsthmusRequestInfo
import PropertyBased
import Testing

private func policy(_ text: String) throws -> PolicySet {
    try PolicySet(sources: [PolicySource(name: "p.yaml", contents: text)])
}

private func resource(
    _ verb: Verb, group: String = "", resource: String, subresource: String = "",
    namespace: String = "", name: String = ""
) -> RequestAttributes {
    RequestAttributes(
        isResourceRequest: true, path: "/x", verb: verb, apiPrefix: group.isEmpty ? "api" : "apis",
        apiGroup: group, apiVersion: "v1", namespace: namespace, resource: resource,
        subresource: subresource, name: name)
}

private func nonResource(_ path: String, _ verb: Verb = .get) -> RequestAttributes {
    RequestAttributes(isResourceRequest: false, path: path, verb: verb)
}

@Suite("Policy decisions")
struct PolicySetTests {
    @Test("RBAC resource matching: plain, subresource, */sub and *")
    func resourceMatching() throws {
        let set = try policy("""
            rules:
              - {apiGroups: [""], resources: [pods], verbs: [get]}
              - {apiGroups: [""], resources: [services/status], verbs: [get]}
              - {apiGroups: [apps], resources: ["*/scale"], verbs: [get]}
              - {apiGroups: [networking.istio.io], resources: ["*"], verbs: [list]}
            """)
        #expect(set.decide(resource(.get, resource: "pods", name: "a"), peer: nil).allowed)
        // `pods` does not grant `pods/log`: RBAC needs the subresource named.
        #expect(!set.decide(resource(.get, resource: "pods", subresource: "log", name: "a"), peer: nil).allowed)
        #expect(set.decide(resource(.get, resource: "services", subresource: "status", name: "a"), peer: nil).allowed)
        #expect(!set.decide(resource(.get, resource: "services", name: "a"), peer: nil).allowed)
        #expect(set.decide(resource(.get, group: "apps", resource: "deployments", subresource: "scale", name: "d"), peer: nil).allowed)
        #expect(!set.decide(resource(.get, group: "apps", resource: "deployments", name: "d"), peer: nil).allowed)
        #expect(set.decide(resource(.list, group: "networking.istio.io", resource: "virtualservices"), peer: nil).allowed)
        #expect(set.decide(resource(.list, group: "networking.istio.io", resource: "gateways", subresource: "status"), peer: nil).allowed)
        #expect(!set.decide(resource(.watch, group: "networking.istio.io", resource: "gateways"), peer: nil).allowed)
        // The group matters: pods in another group are not core pods.
        #expect(!set.decide(resource(.get, group: "metrics.k8s.io", resource: "pods", name: "a"), peer: nil).allowed)
    }

    @Test("resourceNames grant only named requests, never a plain list or watch")
    func resourceNames() throws {
        let set = try policy("rules:\n  - {apiGroups: [\"\"], resources: [configmaps], resourceNames: [istio-ca-root-cert], verbs: [get, list, watch]}\n")
        #expect(set.decide(resource(.get, resource: "configmaps", namespace: "x", name: "istio-ca-root-cert"), peer: nil).allowed)
        // A watch narrowed by fieldSelector=metadata.name carries the name.
        #expect(set.decide(resource(.watch, resource: "configmaps", namespace: "x", name: "istio-ca-root-cert"), peer: nil).allowed)
        #expect(!set.decide(resource(.watch, resource: "configmaps", namespace: "x"), peer: nil).allowed)
        #expect(!set.decide(resource(.get, resource: "configmaps", namespace: "x", name: "other"), peer: nil).allowed)
    }

    @Test("namespaces narrow a rule; cluster-scope requests fall outside it")
    func namespaces() throws {
        let set = try policy("rules:\n  - {apiGroups: [\"\"], resources: [services], namespaces: [istio-system], verbs: [list]}\n")
        #expect(set.decide(resource(.list, resource: "services", namespace: "istio-system"), peer: nil).allowed)
        #expect(!set.decide(resource(.list, resource: "services", namespace: "default"), peer: nil).allowed)
        #expect(!set.decide(resource(.list, resource: "services"), peer: nil).allowed)
    }

    @Test("peers narrow a rule; an unknown caller never matches a peer-limited rule")
    func peers() throws {
        let set = try policy("rules:\n  - {apiGroups: [\"\"], resources: [nodes], peers: [cluster-b], verbs: [list]}\n")
        #expect(set.decide(resource(.list, resource: "nodes"), peer: "cluster-b").allowed)
        #expect(!set.decide(resource(.list, resource: "nodes"), peer: "cluster-c").allowed)
        #expect(!set.decide(resource(.list, resource: "nodes"), peer: nil).allowed)
    }

    @Test("non-resource URLs: exact paths and trailing-* prefixes, never resource requests")
    func nonResourceURLs() throws {
        let set = try policy("rules:\n  - {nonResourceURLs: [/version, /apis/*], verbs: [get]}\n")
        #expect(set.decide(nonResource("/version"), peer: nil).allowed)
        #expect(!set.decide(nonResource("/version/x"), peer: nil).allowed)
        #expect(set.decide(nonResource("/apis/apps/v1"), peer: nil).allowed)
        #expect(!set.decide(nonResource("/apis"), peer: nil).allowed)
        #expect(!set.decide(nonResource("/version", Verb("post")), peer: nil).allowed)
        // A resource request under /apis is decided by resource rules only.
        var request = resource(.list, group: "apps", resource: "deployments")
        request.path = "/apis/apps/v1/deployments"
        #expect(!set.decide(request, peer: nil).allowed)
    }

    @Test("the decision names the first matching rule")
    func firstMatch() throws {
        let set = try PolicySet(sources: [
            PolicySource(name: "a.yaml", contents: "rules:\n  - {apiGroups: [\"\"], resources: [nodes], verbs: [get]}\n"),
            PolicySource(name: "b.yaml", contents: "rules:\n  - {apiGroups: [\"\"], resources: [pods], verbs: [get]}\n  - {apiGroups: [\"*\"], resources: [\"*\"], verbs: [get]}\n"),
        ])
        let decision = set.decide(resource(.get, resource: "pods", name: "p"), peer: nil)
        #expect(decision == PolicyDecision(allowed: true, rule: RuleReference(file: "b.yaml", index: 0, line: 2),
                                           reason: "allowed by b.yaml#rules[0] (line 2)"))
        let denied = set.decide(resource(.list, resource: "pods"), peer: nil)
        #expect(denied == PolicyDecision(allowed: false, rule: nil, reason: "no policy rule allows this request"))
    }

    @Test("rules for * groups and named groups interleave in file order")
    func wildcardGroupOrder() throws {
        let set = try policy("""
            rules:
              - {apiGroups: [""], resources: [nodes], verbs: [get]}
              - {apiGroups: ["*"], resources: [pods], verbs: [get]}
              - {apiGroups: ["", apps], resources: [pods, deployments], verbs: [get]}
              - {apiGroups: ["*"], resources: [deployments], verbs: [list]}
            """)
        #expect(set.decide(resource(.get, resource: "pods", name: "p"), peer: nil).rule?.index == 1)
        #expect(set.decide(resource(.get, group: "apps", resource: "deployments", name: "d"), peer: nil).rule?.index == 2)
        #expect(set.decide(resource(.list, group: "apps", resource: "deployments"), peer: nil).rule?.index == 3)
        // A group no rule names is offered the * rules only.
        #expect(set.decide(resource(.get, group: "example.com", resource: "pods", name: "p"), peer: nil).rule?.index == 1)
        #expect(!set.decide(resource(.get, group: "example.com", resource: "nodes", name: "n"), peer: nil).allowed)
        #expect(set.decide(resource(.get, resource: "nodes", name: "n"), peer: nil).rule?.index == 0)
    }

    static let writeVerbs: [Verb] = [.create, .update, .patch, .delete, .deletecollection, Verb("post"), Verb("put"),
                                     Verb("proxy"), Verb("impersonate"), Verb("escalate"), Verb("bind"), Verb("*")]

    @Test("a policy decision never allows a verb outside get, list and watch")
    func neverWrites() async throws {
        // The widest policy a file can express.
        let set = try policy("rules:\n  - {apiGroups: [\"*\"], resources: [\"*\"], verbs: [\"*\"]}\n  - {nonResourceURLs: [\"*\"], verbs: [\"*\"]}\n")
        let anyVerb = Gen.oneOf(
            Gen.element(of: PolicySetTests.writeVerbs + [.get, .list, .watch]).compactMap { $0 },
            Gen.letter.string(of: 0...8).map { Verb($0) })
        let names = Gen.letterOrNumber.string(of: 0...6)
        await propertyCheck(count: 500, input: anyVerb, Gen.bool, names, names) { verb, isResource, group, name in
            let request = isResource
                ? resource(verb, group: group.lowercased(), resource: "pods", name: name)
                : nonResource("/" + name, verb)
            let decision = set.decide(request, peer: "p")
            #expect(decision.allowed == Verb.readOnly.contains(verb), "verb \(verb)")
        }
    }

    @Test("the 403 message matches the API server's wording")
    func forbiddenWording() {
        #expect(forbiddenMessage(for: resource(.watch, resource: "services"), peer: "u-1")
            == "services is forbidden: peer \"u-1\" cannot watch resource \"services\" in API group \"\" at the cluster scope")
        #expect(forbiddenMessage(for: resource(.list, resource: "configmaps", namespace: "fx"), peer: "u-1")
            == "configmaps is forbidden: peer \"u-1\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"fx\"")
        #expect(forbiddenMessage(for: resource(.get, group: "apps", resource: "deployments", subresource: "scale", namespace: "n", name: "d"), peer: "u-1")
            == "deployments.apps \"d\" is forbidden: peer \"u-1\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"n\"")
        #expect(forbiddenMessage(for: nonResource("/metrics"), peer: "u-1")
            == "forbidden: peer \"u-1\" cannot get path \"/metrics\"")
    }
}
