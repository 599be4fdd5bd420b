import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTestSupport
import Testing

private func secret(_ namespace: String, _ name: String, type: String = "Opaque", labels: [(String, JSON)] = [],
                    annotations: [(String, JSON)] = []) -> JSON {
    var metadata: [(String, JSON)] = [("name", .string(name)), ("namespace", .string(namespace))]
    if !labels.isEmpty { metadata.append(("labels", .object(labels))) }
    if !annotations.isEmpty { metadata.append(("annotations", .object(annotations))) }
    return .object([("metadata", .object(metadata)), ("type", .string(type)),
                    ("data", .object([("k", .string("c2VjcmV0"))]))])
}

/// The Secrets a real cluster running Isthmus and Istio holds: the ones no peer
/// may ever read, and one gateway credential a remote istiod legitimately reads.
private func seedSecrets(_ upstream: FakeAPIServer) throws {
    for namespace in ["isthmus-system", "istio-system", "shop"] {
        try upstream.create(resource: "namespaces", object: .object([("metadata", .object([("name", .string(namespace))]))]))
    }
    for object in [
        secret("isthmus-system", "isthmus-cluster-key"),
        secret("isthmus-system", "isthmus-trusted-peers"),
        secret("istio-system", "istio-remote-secret-cluster-c", labels: [("istio/multiCluster", .string("true"))]),
        secret("istio-system", "hand-made-remote", labels: [("istio/multiCluster", .string("true"))]),
        secret("demo", "legacy-token", type: "kubernetes.io/service-account-token",
               annotations: [("kubernetes.io/service-account.name", .string("default"))]),
        secret("shop", "sh.helm.release.v1.cart.v1", type: "helm.sh/release.v1"),
        secret("istio-system", "gateway-cert", type: "kubernetes.io/tls"),
    ] {
        _ = try upstream.create(resource: "secrets", object: object)
    }
    _ = try upstream.create(resource: "pods", object: .object([
        ("metadata", .object([("name", .string("isthmus-proxy-0")), ("namespace", .string("isthmus-system"))])),
        ("spec", .object([("containers", .array([.object([("name", .string("proxy")), ("image", .string("isthmus"))])]))])),
    ]))
}

private let neverServed = ["isthmus-cluster-key", "isthmus-trusted-peers", "istio-remote-secret-cluster-c", "hand-made-remote",
                           "legacy-token", "sh.helm.release.v1.cart.v1"]
private let protobufAccept = "Accept: application/vnd.kubernetes.protobuf,application/json"

@Suite("Proxy: what no peer is ever served, whatever the policy", .serialized)
struct ProxyProtectedObjectsTests {
    @Test("lists of Secrets, as kubectl Table, JSON and protobuf-preferring clients ask, hold only the gateway credential")
    func lists() async throws {
        let h = try await ProxyHarness.start()
        do {
            try seedSecrets(h.upstream)
            let table = try await h.kubectl("get", "secrets", "-A")
            #expect(table.status == 0, "\(table)")
            #expect(table.stdout.contains("gateway-cert"), "\(table.stdout)")
            for name in neverServed { #expect(!table.stdout.contains(name), "\(name) in \(table.stdout)") }

            for http1 in [false, true] {
                for extra in [[String](), [protobufAccept]] {
                    let all = try await h.curl("/api/v1/secrets", http1: http1, token: h.peerToken, extraHeaders: extra)
                    #expect(all.code == 200 && all.body.contains("gateway-cert"), "\(all)")
                    for name in neverServed { #expect(!all.body.contains(name), "\(name) in \(all.body)") }
                }
                let inNamespace = try await h.curl("/api/v1/namespaces/istio-system/secrets", http1: http1, token: h.peerToken)
                #expect(inNamespace.code == 200 && inNamespace.body.contains("gateway-cert"), "\(inNamespace)")
                #expect(!inNamespace.body.contains("remote"), "\(inNamespace.body)")
            }

            // Every object of the Isthmus namespace is left out of cluster-wide lists of any kind.
            let pods = try await h.curl("/api/v1/pods", token: h.peerToken)
            #expect(pods.code == 200 && !pods.body.contains("isthmus-proxy-0"), "\(pods)")

            // The client's selector ANDed with the exclusions: asking for them is an empty match, as the API server answers one
            // (pretty-printed: the API server indents for curl's User-Agent).
            let tokens = try await h.curl("/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Fservice-account-token",
                                          token: h.peerToken)
            #expect(tokens.code == 200 && tokens.body.contains(#""items": []"#), "\(tokens)")
            let remote = try await h.curl("/api/v1/secrets?labelSelector=istio%2FmultiCluster%3Dtrue", token: h.peerToken)
            #expect(remote.code == 200 && remote.body.contains(#""items": []"#), "\(remote)")
        }
        await h.stop()
    }

    @Test("the selectors forwarded upstream are exactly the exclusions in front of the client's")
    func forwardedSelectors() async throws {
        let h = try await ProxyHarness.start()
        do {
            try seedSecrets(h.upstream)
            h.upstream.clearRecentRequests()
            _ = try await h.curl("/api/v1/secrets?labelSelector=app%3Dgw&limit=10", token: h.peerToken)
            _ = try await h.curl("/api/v1/namespaces/istio-system/secrets", token: h.peerToken)
            _ = try await h.curl("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", token: h.peerToken)
            _ = try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken)
            let uris = h.upstream.recentRequests.map(\.uri).filter { $0.hasPrefix("/api/v1/") }
            #expect(uris == [
                "/api/v1/secrets?labelSelector=istio%2FmultiCluster%21%3Dtrue%2Capp%3Dgw&limit=10"
                    + "&fieldSelector=metadata.namespace%21%3Disthmus-system%2Ctype%21%3Dkubernetes.io%2Fservice-account-token%2Ctype%21%3Dhelm.sh%2Frelease.v1",
                "/api/v1/namespaces/istio-system/secrets?fieldSelector=type%21%3Dkubernetes.io%2Fservice-account-token%2Ctype%21%3Dhelm.sh%2Frelease.v1"
                    + "&labelSelector=istio%2FmultiCluster%21%3Dtrue",
                "/api/v1/pods?fieldSelector=metadata.namespace%21%3Disthmus-system%2Cspec.nodeName%3Dn1",
                "/api/v1/namespaces/demo/services",
            ], "\(uris)")
        }
        await h.stop()
    }

    @Test("a get by name: each protected Secret is 403 with its own reason, the gateway credential 200, a missing one 404")
    func gets() async throws {
        let h = try await ProxyHarness.start()
        do {
            try seedSecrets(h.upstream)
            let refusals: [(path: String, says: String)] = [
                ("/api/v1/namespaces/isthmus-system/secrets/isthmus-cluster-key", "objects in the Isthmus namespace"),
                ("/api/v1/namespaces/isthmus-system/secrets/isthmus-trusted-peers", "objects in the Isthmus namespace"),
                ("/api/v1/namespaces/istio-system/secrets/istio-remote-secret-cluster-c", "istiod remote secrets"),
                ("/api/v1/namespaces/istio-system/secrets/hand-made-remote", "istiod remote secrets"),
                ("/api/v1/namespaces/demo/secrets/legacy-token", "kubernetes.io/service-account-token"),
                ("/api/v1/namespaces/shop/secrets/sh.helm.release.v1.cart.v1", "helm.sh/release.v1"),
            ]
            for http1 in [false, true] {
                for extra in [[String](), [protobufAccept]] {
                    h.upstream.clearRecentRequests()
                    for refusal in refusals {
                        let answer = try await h.curl(refusal.path, http1: http1, token: h.peerToken, extraHeaders: extra)
                        #expect(answer.code == 403 && answer.body.contains(#""reason":"Forbidden""#), "\(refusal.path): \(answer)")
                        #expect(answer.body.contains(refusal.says), "\(refusal.path): \(answer.body)")
                        #expect(!answer.body.contains("c2VjcmV0"), "no byte of the Secret's data")
                    }
                    // Nothing refused was ever fetched by its get path.
                    #expect(!h.upstream.recentRequests.contains { request in refusals.contains { request.uri == $0.path } },
                            "\(h.upstream.recentRequests.map(\.uri))")
                    let gateway = try await h.curl("/api/v1/namespaces/istio-system/secrets/gateway-cert", http1: http1,
                                                   token: h.peerToken, extraHeaders: extra)
                    #expect(gateway.code == 200 && gateway.body.contains(#""name": "gateway-cert""#), "\(gateway)")
                }
            }
            let missing = try await h.curl("/api/v1/namespaces/istio-system/secrets/nothing-here", token: h.peerToken)
            #expect(missing.code == 404 && missing.body.contains(#"secrets \"nothing-here\" not found"#), "\(missing)")

            // kubectl reports the refusal as it reports RBAC's.
            let key = try await h.kubectl("-n", "isthmus-system", "get", "secret", "isthmus-cluster-key", "-o", "yaml")
            #expect(key.status != 0 && key.stderr.contains("Error from server (Forbidden)"), "\(key)")
            #expect(!key.stdout.contains("c2VjcmV0"))
            #expect(h.proxy.value(h.proxy.metrics.denials, ["protected_isthmus_namespace"]) >= 9)
            #expect(h.proxy.value(h.proxy.metrics.denials, ["protected_service_account_token"]) == 4)
            #expect(h.proxy.value(h.proxy.metrics.denials, ["protected_remote_secret"]) == 8)
        }
        await h.stop()
    }

    @Test("a Secret lookup the API server does not answer is a 502 that says so, and the get is never forwarded unchecked")
    func lookupFails() async throws {
        let h = try await ProxyHarness.start()
        do {
            try seedSecrets(h.upstream)
            var faults = FaultInjection()
            faults.errorFraction = 1
            faults.errorStatusCode = 500
            h.upstream.setFaults(faults)
            h.upstream.clearRecentRequests()
            let answer = try await h.curl("/api/v1/namespaces/istio-system/secrets/gateway-cert", token: h.peerToken)
            #expect(answer.code == 502 && answer.body.contains("could not check this Secret"), "\(answer)")
            #expect(!h.upstream.recentRequests.contains { $0.uri == "/api/v1/namespaces/istio-system/secrets/gateway-cert" })
            #expect(h.proxy.value(h.proxy.metrics.upstreamFailures, ["secretLookupFailed"]) == 1)
        }
        await h.stop()
    }

    @Test("a Secret lookup is bounded by the response-header timeout: a slow API server is a 504, the get never forwarded")
    func lookupTimesOut() async throws {
        let h = try await ProxyHarness.start(configure: { $0.upstream.responseHeaderTimeout = .seconds(1) })
        do {
            try seedSecrets(h.upstream)
            var faults = FaultInjection()
            faults.responseDelay = .seconds(4)
            h.upstream.setFaults(faults)
            h.upstream.clearRecentRequests()
            let started = ContinuousClock.now
            let answer = try await h.curl("/api/v1/namespaces/istio-system/secrets/gateway-cert", token: h.peerToken)
            #expect(answer.code == 504 && answer.body.contains("did not answer in time"), "\(answer)")
            #expect(ContinuousClock.now - started < .seconds(4), "the lookup waited for the slow answer")
            #expect(!h.upstream.recentRequests.contains { $0.uri == "/api/v1/namespaces/istio-system/secrets/gateway-cert" })
        }
        await h.stop()
    }

    @Test("a watch of Secrets never carries a protected one, created before or after it opened")
    func watch() async throws {
        let h = try await ProxyHarness.start()
        do {
            try seedSecrets(h.upstream)
            let output = h.directory.appendingPathComponent("secrets-watch.out")
            _ = FileManager.default.createFile(atPath: output.path, contents: nil)
            let (process, _, _) = h.process(ProxyHarness.curlPath, ["-N"] + h.curlArguments("/api/v1/secrets?watch=1", http1: false,
                                                                                           token: h.peerToken))
            process.standardOutput = try FileHandle(forWritingTo: output)
            try process.run()
            func received() -> String { (try? String(contentsOf: output, encoding: .utf8)) ?? "" }
            await eventually("the watch is open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 1 }
            _ = try h.upstream.create(resource: "secrets", object: secret("demo", "later-token", type: "kubernetes.io/service-account-token",
                                                                         annotations: [("kubernetes.io/service-account.name", .string("default"))]))
            _ = try h.upstream.create(resource: "secrets", object: secret("isthmus-system", "isthmus-cluster-key-next"))
            _ = try h.upstream.create(resource: "secrets", object: secret("istio-system", "istio-remote-secret-cluster-d",
                                                                         labels: [("istio/multiCluster", .string("true"))]))
            _ = try h.upstream.create(resource: "secrets", object: secret("istio-system", "gateway-cert-2", type: "kubernetes.io/tls"))
            await eventually("the new gateway credential arrives", deadline: .seconds(30)) { received().contains("gateway-cert-2") }
            let events = received()
            for name in neverServed + ["later-token", "isthmus-cluster-key-next", "istio-remote-secret-cluster-d"] {
                #expect(!events.contains(name), "\(name) in \(events)")
            }
            await h.kill(process)
        }
        await h.stop()
    }
}
