import IsthmusPolicy
import IsthmusRequestInfo
import Testing

/// The shipped `policies/` directory, found from this file's place in the repo.
private let policiesDirectory: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/IsthmusPolicyTests/DefaultPoliciesTests.swift
    return parts.joined(separator: "/") + "/policies"
}()

private func get(_ group: String, _ resource: String, _ verb: Verb = .list, namespace: String = "") -> RequestAttributes {
    RequestAttributes(isResourceRequest: true, path: "/x", verb: verb, apiPrefix: group.isEmpty ? "api" : "apis",
                      apiGroup: group, apiVersion: "v1", namespace: namespace, resource: resource)
}

@Suite("Shipped default policies")
struct DefaultPoliciesTests {
    @Test("policies/ loads and grants what a remote istiod reads")
    func defaultPolicy() throws {
        let set = try PolicySet.load(directory: policiesDirectory)
        #expect(set.files == ["discovery.yaml", "istio-reader.yaml"])
        for (group, resource) in [("", "services"), ("", "pods"), ("", "endpoints"), ("", "nodes"), ("", "namespaces"),
                                  ("", "secrets"), ("discovery.k8s.io", "endpointslices"),
                                  ("networking.istio.io", "virtualservices"), ("networking.istio.io", "workloadentries"),
                                  ("security.istio.io", "peerauthentications"), ("apiextensions.k8s.io", "customresourcedefinitions"),
                                  ("apps", "replicasets"), ("multicluster.x-k8s.io", "serviceexports")] {
            for verb in [Verb.get, .list, .watch] {
                #expect(set.decide(get(group, resource, verb), peer: "p").allowed, "\(verb) \(group)/\(resource)")
            }
        }
        for path in ["/version", "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1"] {
            #expect(set.decide(RequestAttributes(isResourceRequest: false, path: path, verb: .get), peer: "p").allowed, "\(path)")
        }
        #expect(!set.decide(get("", "configmaps"), peer: "p").allowed)
        #expect(!set.decide(get("apps", "deployments"), peer: "p").allowed)
        #expect(!set.decide(get("rbac.authorization.k8s.io", "clusterroles"), peer: "p").allowed)
        #expect(!set.decide(get("", "pods", .create), peer: "p").allowed)
        #expect(!set.decide(RequestAttributes(isResourceRequest: false, path: "/metrics", verb: .get), peer: "p").allowed)
    }

    @Test("policies/strict/ is the default without Secrets")
    func strictPolicy() throws {
        let strict = try PolicySet.load(directory: policiesDirectory + "/strict")
        #expect(!strict.decide(get("", "secrets", .get), peer: "p").allowed)
        #expect(!strict.decide(get("", "secrets", .watch), peer: "p").allowed)
        #expect(strict.decide(get("", "services", .watch), peer: "p").allowed)
        #expect(strict.decide(get("discovery.k8s.io", "endpointslices", .watch), peer: "p").allowed)
    }

    @Test("a missing or empty directory is refused with a message naming it")
    func missingDirectory() {
        #expect(throws: PolicyLoadError.self) { try PolicySet.load(directory: "/nonexistent/isthmus-policies") }
        do {
            _ = try PolicySet.load(directory: "/nonexistent/isthmus-policies")
        } catch {
            #expect(error.description.hasPrefix("/nonexistent/isthmus-policies: cannot read the policy directory"))
        }
    }
}
