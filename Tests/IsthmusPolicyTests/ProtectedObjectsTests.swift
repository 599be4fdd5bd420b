import IsthmusPolicy
import IsthmusRequestInfo
import Testing

private let protected = ProtectedObjects(isthmusNamespace: "isthmus-system")

private func decide(_ target: String) throws -> ProtectedObjects.Decision {
    protected.decide(try RequestAttributes(method: "GET", target: target))
}

private let secretsFields = ["type!=kubernetes.io/service-account-token", "type!=helm.sh/release.v1"]
private let secretsLabels = ["istio/multiCluster!=true"]

@Suite("Protected objects: what no peer is ever served")
struct ProtectedObjectsTests {
    @Test("everything in the Isthmus namespace is refused, by any path form and any verb", arguments: [
        "/api/v1/namespaces/isthmus-system/secrets/isthmus-cluster-key",
        "/api/v1/namespaces/isthmus-system/secrets",
        "/api/v1/namespaces/isthmus-system/secrets?watch=1",
        "/api/v1/watch/namespaces/isthmus-system/secrets",
        "/api/v1/namespaces/isthmus-system/configmaps/policies",
        "/api/v1/namespaces/isthmus-system/pods/proxy-0/log",
        "/apis/coordination.k8s.io/v1/namespaces/isthmus-system/leases/isthmus-controller",
        "/apis/networking.istio.io/v1/namespaces/isthmus-system/virtualservices",
    ])
    func isthmusNamespace(target: String) throws {
        #expect(try decide(target) == .refuse(.isthmusNamespace))
    }

    @Test("the Namespace object itself is not inside it")
    func namespaceObject() throws {
        #expect(try decide("/api/v1/namespaces/isthmus-system") == .unrestricted)
        #expect(try decide("/api/v1/namespaces") == .unrestricted)
    }

    @Test("remote secrets are refused by name in any namespace, through a get, a named watch or a name selector", arguments: [
        "/api/v1/namespaces/istio-system/secrets/istio-remote-secret-cluster-c",
        "/api/v1/namespaces/other/secrets/istio-remote-secret-x",
        "/api/v1/namespaces/istio-system/secrets?fieldSelector=metadata.name%3Distio-remote-secret-cluster-c",
        "/api/v1/watch/namespaces/istio-system/secrets/istio-remote-secret-cluster-c",
    ])
    func remoteSecretNames(target: String) throws {
        #expect(try decide(target) == .refuse(.remoteSecret))
    }

    @Test("a get of any other Secret by name is checked against the object first")
    func secretGet() throws {
        #expect(try decide("/api/v1/namespaces/istio-system/secrets/gateway-cert") == .checkSecretFirst)
        #expect(protected.decide(try RequestAttributes(method: "HEAD", target: "/api/v1/namespaces/demo/secrets/x"))
            == .checkSecretFirst)
    }

    @Test("the verdict on a looked-up Secret: label, then type; a TLS or Opaque Secret may be served")
    func judge() {
        #expect(protected.judgeSecret(type: "Opaque", labels: ["istio/multiCluster": "true"]) == .remoteSecret)
        #expect(protected.judgeSecret(type: "kubernetes.io/service-account-token", labels: [:]) == .serviceAccountToken)
        #expect(protected.judgeSecret(type: "helm.sh/release.v1", labels: ["owner": "helm"]) == .helmRelease)
        #expect(protected.judgeSecret(type: "kubernetes.io/tls", labels: ["istio/multiCluster": "false"]) == nil)
        #expect(protected.judgeSecret(type: "", labels: [:]) == nil)
    }

    @Test("a namespaced Secret list or watch is narrowed by type and label")
    func namespacedSecretList() throws {
        let expected = ProtectedObjects.Decision.narrow(SelectorNarrowing(fieldRequirements: secretsFields, labelRequirements: secretsLabels))
        #expect(try decide("/api/v1/namespaces/istio-system/secrets") == expected)
        #expect(try decide("/api/v1/namespaces/istio-system/secrets?watch=true&labelSelector=a%3Db") == expected)
    }

    @Test("a cluster-wide Secret list also leaves out the Isthmus namespace")
    func clusterWideSecretList() throws {
        #expect(try decide("/api/v1/secrets?watch=1") == .narrow(SelectorNarrowing(
            fieldRequirements: ["metadata.namespace!=isthmus-system"] + secretsFields, labelRequirements: secretsLabels)))
    }

    @Test("a named watch by path names the object in the field selector, as the API server requires")
    func namedWatch() throws {
        #expect(try decide("/api/v1/watch/namespaces/demo/secrets/web-tls") == .narrow(SelectorNarrowing(
            fieldRequirements: secretsFields + ["metadata.name=web-tls"], labelRequirements: secretsLabels)))
        // `?watch` on an object's own path is a get for RequestInfo (and the API server's router): checked first.
        #expect(try decide("/api/v1/namespaces/demo/secrets/web-tls?watch=1") == .checkSecretFirst)
    }

    @Test("cluster-wide lists of namespaced kinds leave out the Isthmus namespace; cluster-scoped kinds are untouched")
    func clusterWideLists() throws {
        let outside = ProtectedObjects.Decision.narrow(SelectorNarrowing(fieldRequirements: ["metadata.namespace!=isthmus-system"]))
        #expect(try decide("/api/v1/pods") == outside)
        #expect(try decide("/apis/discovery.k8s.io/v1/endpointslices?watch=1") == outside)
        #expect(try decide("/apis/networking.istio.io/v1/virtualservices") == outside)
        #expect(try decide("/api/v1/nodes") == .unrestricted)
        #expect(try decide("/api/v1/namespaces?watch=1") == .unrestricted)
        #expect(try decide("/apis/apiextensions.k8s.io/v1/customresourcedefinitions") == .unrestricted)
        #expect(try decide("/apis/deckhouse.io/v1alpha1/istiomulticlusters") == .unrestricted)
    }

    @Test("gets and lists in other namespaces, and discovery, pass unchanged")
    func unrestricted() throws {
        #expect(try decide("/api/v1/namespaces/demo/services") == .unrestricted)
        #expect(try decide("/api/v1/namespaces/demo/services/web") == .unrestricted)
        #expect(try decide("/api/v1/namespaces/isthmus-systemx/pods") == .unrestricted)
        #expect(try decide("/api/v1") == .unrestricted)
        #expect(try decide("/version") == .unrestricted)
    }

    @Test("the Isthmus namespace is configurable and escaped in the selector")
    func otherNamespace() throws {
        let custom = ProtectedObjects(isthmusNamespace: "d8-isthmus")
        #expect(custom.decide(try RequestAttributes(method: "GET", target: "/api/v1/namespaces/d8-isthmus/secrets")) == .refuse(.isthmusNamespace))
        #expect(custom.decide(try RequestAttributes(method: "GET", target: "/api/v1/namespaces/isthmus-system/secrets"))
            == .narrow(SelectorNarrowing(fieldRequirements: secretsFields, labelRequirements: secretsLabels)))
    }

    @Test("the lookup of a Secret is a list narrowed to exactly its name")
    func lookupTarget() {
        #expect(ProtectedObjects.secretLookupTarget(namespace: "demo", name: "a,b")
            == "/api/v1/namespaces/demo/secrets?fieldSelector=metadata.name%3Da%5C%2Cb")
    }
}
