import Foundation
import Testing

private func json(_ text: String) throws -> [String: Any] {
    try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite("isthmus policy")
struct PolicyCommandTests {
    let policies = CLI.repositoryRoot + "/policies"

    @Test("policy check accepts the shipped policies")
    func checkShipped() async throws {
        for dir in [policies, policies + "/strict"] {
            let result = try await CLI.run(["policy", "check", dir])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("7 rules in 2 files"))
        }
    }

    @Test("policy check prints file:line:column: field: message for each problem and exits 1")
    func checkBad() async throws {
        let dir = try CLI.temporaryDirectory()
        try "rules:\n  - apiGroups: [\"\"]\n    resources: [pods]\n    verbs: [get, delete]\n"
            .write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        try "rules:\n  - apiGroups: [\"\"]\n    resourcez: [pods]\n    verbs: [get]\n"
            .write(toFile: dir + "/b.yml", atomically: true, encoding: .utf8)
        let result = try await CLI.run(["policy", "check", dir])
        #expect(result.status == 1)
        let lines = result.stderr.split(separator: "\n").map(String.init)
        #expect(lines.contains("a.yaml:4:18: rules[0].verbs[1]: verb \"delete\" is not allowed: Isthmus is read-only, verbs are get, list, watch or *"))
        #expect(lines.contains { $0.hasPrefix("b.yml:3:5: rules[0].resourcez: unknown field") })
    }

    @Test("policy explain prints the attributes, the decision and the rule")
    func explainAllowed() async throws {
        let result = try await CLI.run(["policy", "explain", "--policies", policies, "GET",
                                  "/apis/discovery.k8s.io/v1/namespaces/istio-system/endpointslices?watch=true&resourceVersion=5"])
        #expect(result.status == 0, "\(result.stderr)")
        let doc = try json(result.stdout)
        #expect(doc["isResourceRequest"] as? Bool == true)
        #expect(doc["verb"] as? String == "watch")
        #expect(doc["apiGroup"] as? String == "discovery.k8s.io")
        #expect(doc["apiVersion"] as? String == "v1")
        #expect(doc["namespace"] as? String == "istio-system")
        #expect(doc["resource"] as? String == "endpointslices")
        #expect(doc["path"] as? String == "/apis/discovery.k8s.io/v1/namespaces/istio-system/endpointslices")
        #expect(doc["allowed"] as? Bool == true)
        let rule = try #require(doc["rule"] as? [String: Any])
        #expect(rule["file"] as? String == "istio-reader.yaml")
        #expect(rule["index"] as? Int == 3)
    }

    @Test("policy explain reports a denial with a null rule and exits 0")
    func explainDenied() async throws {
        // %73ecrets is secrets to the API server; the strict policy leaves Secrets out.
        let result = try await CLI.run(["policy", "explain", "--policies", policies + "/strict", "GET", "/api/v1/%73ecrets"])
        #expect(result.status == 0)
        let doc = try json(result.stdout)
        #expect(doc["resource"] as? String == "secrets")
        #expect(doc["verb"] as? String == "list")
        #expect(doc["allowed"] as? Bool == false)
        #expect(doc["rule"] is NSNull)

        let write = try json(try await CLI.run(["policy", "explain", "--policies", policies, "DELETE", "/api/v1/namespaces/a/pods/b"]).stdout)
        #expect(write["verb"] as? String == "delete")
        #expect(write["allowed"] as? Bool == false)
        #expect((write["reason"] as? String)?.contains("read-only") == true)
    }

    @Test("policy explain exits 2 with the reason for a target refused before authorization")
    func explainUnparseable() async throws {
        let result = try await CLI.run(["policy", "explain", "--policies", policies, "GET", "/api/v1/namespaces/a%2Fb/pods"])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "refused before authorization: the request path contains an encoded slash\n")
    }

    @Test("a peer-limited rule matches only with --peer")
    func explainPeer() async throws {
        let dir = try CLI.temporaryDirectory()
        try "rules:\n  - {apiGroups: [\"\"], resources: [nodes], verbs: [list], peers: [cluster-b]}\n"
            .write(toFile: dir + "/p.yaml", atomically: true, encoding: .utf8)
        let without = try json(try await CLI.run(["policy", "explain", "--policies", dir, "GET", "/api/v1/nodes"]).stdout)
        #expect(without["allowed"] as? Bool == false)
        let with = try json(try await CLI.run(["policy", "explain", "--policies", dir, "--peer", "cluster-b", "GET", "/api/v1/nodes"]).stdout)
        #expect(with["allowed"] as? Bool == true)
    }

    @Test("policy explain shows what is never served: the cluster key refused, a Secret list narrowed, a Secret get checked")
    func explainProtected() async throws {
        let key = try json(try await CLI.run(["policy", "explain", "--policies", policies, "GET",
                                              "/api/v1/namespaces/isthmus-system/secrets/isthmus-cluster-key"]).stdout)
        #expect(key["allowed"] as? Bool == false, "the default policy grants secrets; the cluster key is refused anyway")
        #expect(key["rule"] is NSNull && key["forwardTarget"] is NSNull)
        let refused = try #require(key["protected"] as? [String: Any])
        #expect(refused["decision"] as? String == "refused" && refused["reason"] as? String == "isthmus_namespace")

        let list = try json(try await CLI.run(["policy", "explain", "--policies", policies, "GET", "/api/v1/secrets?watch=1"]).stdout)
        #expect(list["allowed"] as? Bool == true)
        let narrowed = try #require(list["protected"] as? [String: Any])
        #expect(narrowed["fieldSelector"] as? String
            == "metadata.namespace!=isthmus-system,type!=kubernetes.io/service-account-token,type!=helm.sh/release.v1")
        #expect(narrowed["labelSelector"] as? String == "istio/multiCluster!=true")
        #expect((list["forwardTarget"] as? String)?.hasPrefix("/api/v1/secrets?watch=1&fieldSelector=metadata.namespace%21%3Disthmus-system") == true)

        let other = try json(try await CLI.run(["policy", "explain", "--policies", policies, "--isthmus-namespace", "d8-isthmus",
                                                "GET", "/api/v1/namespaces/d8-isthmus/pods"]).stdout)
        #expect((other["protected"] as? [String: Any])?["reason"] as? String == "isthmus_namespace")

        let get = try json(try await CLI.run(["policy", "explain", "--policies", policies, "GET",
                                              "/api/v1/namespaces/istio-system/secrets/gateway-cert"]).stdout)
        #expect((get["protected"] as? [String: Any])?["decision"] as? String == "checkObject")
        let services = try json(try await CLI.run(["policy", "explain", "--policies", policies, "GET",
                                                   "/api/v1/namespaces/demo/services"]).stdout)
        #expect(services["protected"] is NSNull)
        #expect(services["forwardTarget"] as? String == "/api/v1/namespaces/demo/services")
    }
}
