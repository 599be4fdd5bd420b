import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeClient
import IsthmusKubeTypes
import Testing

/// Every verb against the embedded API server over TLS, configured from a kubeconfig.
@Suite struct VerbTests {
    @Test func configMapCRUDAndTypedErrors() async throws {
        let kube = try await KubeTestServer.start()
        let client = kube.client

        let created = try await client.create(.configMaps, object: configMap("settings", data: ["a": "1"]))
        let uid = try #require(created.value(at: ["metadata", "uid"])?.stringValue)
        let firstRV = try #require(created.value(at: ["metadata", "resourceVersion"])?.stringValue)
        // The kubeconfig's namespace is used when the call names none.
        #expect(created.value(at: ["metadata", "namespace"])?.stringValue == "default")

        var fetched = try await client.get(.configMaps, name: "settings")
        #expect(fetched.value(at: ["data", "a"])?.stringValue == "1")
        #expect(try kube.server.get(resource: "configmaps", namespace: "default", name: "settings")
            .value(at: ["metadata", "uid"])?.stringValue == uid)

        // Update with the current resourceVersion succeeds...
        fetched.setValue(.string("2"), at: ["data", "a"])
        let updated = try await client.update(.configMaps, object: fetched)
        #expect(updated.value(at: ["data", "a"])?.stringValue == "2")
        #expect(updated.value(at: ["metadata", "resourceVersion"])?.stringValue != firstRV)

        // ...and a stale one is a typed conflict.
        var stale = fetched
        stale.setValue(.string("3"), at: ["data", "a"])
        await #expect { _ = try await client.update(.configMaps, object: stale) } throws: { error in
            let e = error as! KubeClientError
            return e.isConflict && e.code == 409 && e.reason == "Conflict" && !e.isAlreadyExists
        }

        await #expect { _ = try await client.create(.configMaps, object: configMap("settings")) } throws: { error in
            let e = error as! KubeClientError
            return e.isAlreadyExists && !e.isConflict && e.status?.details?.name == "settings"
        }

        let patched = try await client.patch(.configMaps, name: "settings", .merge(.object([("data", .object([("b", .string("x"))]))])))
        #expect(patched.value(at: ["data", "b"])?.stringValue == "x")
        #expect(patched.value(at: ["data", "a"])?.stringValue == "2")

        let jsonPatched = try await client.patch(.configMaps, namespace: "default", name: "settings", .json([
            .object([("op", .string("test")), ("path", .string("/data/b")), ("value", .string("x"))]),
            .object([("op", .string("remove")), ("path", .string("/data/a"))]),
        ]))
        #expect(jsonPatched.value(at: ["data", "a"]) == nil)
        // A failed `test` operation is a typed 422.
        await #expect { _ = try await client.patch(.configMaps, name: "settings", .json([
            .object([("op", .string("test")), ("path", .string("/data/b")), ("value", .string("nope"))]),
        ])) } throws: { ($0 as! KubeClientError).isInvalid }

        // Delete with a wrong uid precondition is refused; with none it goes.
        await #expect { try await client.delete(.configMaps, name: "settings", preconditions: .init(uid: "other")) }
            throws: { ($0 as! KubeClientError).isConflict }
        try await client.delete(.configMaps, name: "settings", preconditions: .init(uid: uid))

        await #expect { _ = try await client.get(.configMaps, name: "settings") } throws: { error in
            let e = error as! KubeClientError
            return e.isNotFound && e.status?.message == #"configmaps "settings" not found"#
        }
        await #expect { try await client.delete(.configMaps, name: "settings") } throws: { ($0 as! KubeClientError).isNotFound }
        try await kube.shutdown()
    }

    @Test func unauthorizedAndUnreachableAreDistinct() async throws {
        let kube = try await KubeTestServer.start()
        var config = kube.client.configuration
        config.credentials = .bearerToken("wrong")
        let wrong = try KubeClient(configuration: config)
        await #expect { _ = try await wrong.get(.configMaps, name: "x") } throws: { error in
            let e = error as! KubeClientError
            return e.isUnauthorized && e.reason == "Unauthorized"
        }
        // A CA that did not sign the server's certificate fails the handshake: a transport error.
        config.credentials = .bearerToken(KubeTestServer.token)
        config.certificateAuthorityPEM = Array(KubeconfigTests.certificates.caCertificatePEM.utf8)
        let untrusting = try KubeClient(configuration: config)
        await #expect { _ = try await untrusting.get(.configMaps, name: "x") } throws: { error in
            if case .transport = error as! KubeClientError { return true }
            return false
        }
        try await kube.shutdown()
        // Nothing listening.
        await #expect { _ = try await kube.client.get(.configMaps, name: "x") } throws: { error in
            (error as! KubeClientError).isServerError && (error as! KubeClientError).status == nil
        }
    }

    @Test func secretServerSideApplyCreatesThenUpdates() async throws {
        let kube = try await KubeTestServer.start()
        let client = kube.client
        func secret(_ value: String) -> JSON {
            .object([
                ("apiVersion", .string("v1")), ("kind", .string("Secret")),
                ("metadata", .object([("name", .string("remote")), ("namespace", .string("kube-system")),
                                      ("labels", .object([("owner", .string("isthmus"))]))])),
                ("type", .string("Opaque")),
                ("stringData", .object([])),
                ("data", .object([("token", .string(Data(value.utf8).base64EncodedString()))])),
            ])
        }
        let created = try await client.apply(.secrets, object: secret("one"), fieldManager: "isthmus-controller", force: true)
        #expect(created.value(at: ["metadata", "namespace"])?.stringValue == "kube-system")
        #expect(created.value(at: ["data", "token"])?.stringValue == Data("one".utf8).base64EncodedString())
        let applied = try await client.apply(.secrets, object: secret("two"), fieldManager: "isthmus-controller", force: true)
        #expect(applied.value(at: ["metadata", "uid"]) == created.value(at: ["metadata", "uid"]))
        let stored = try await client.get(.secrets, namespace: "kube-system", name: "remote")
        #expect(stored.value(at: ["data", "token"])?.stringValue == Data("two".utf8).base64EncodedString())
        #expect(stored.value(at: ["metadata", "labels", "owner"])?.stringValue == "isthmus")

        // The request went as server-side apply, with the field manager and force.
        let applies = kube.server.recentRequests.filter { $0.method == "PATCH" }
        #expect(applies.count == 2)
        #expect(applies.allSatisfy { $0.header("content-type") == "application/apply-patch+yaml" })
        #expect(applies.allSatisfy { $0.uri.contains("fieldManager=isthmus-controller") && $0.uri.contains("force=true") })
        #expect(applies.allSatisfy { $0.header("authorization") == "<redacted>" })
        try await kube.shutdown()
    }

    @Test func statusSubresourceOfACustomResource() async throws {
        let kube = try await KubeTestServer.start()
        try kube.server.installIstioMulticlusterCRD()
        let client = kube.client
        let object: JSON = .object([
            ("apiVersion", .string("deckhouse.io/v1alpha1")), ("kind", .string("IstioMulticluster")),
            ("metadata", .object([("name", .string("peer-b"))])),
            ("spec", .object([("metadataEndpoint", .string("https://b.example/metadata/"))])),
        ])
        let created = try await client.create(.istioMulticlusters, object: object)
        #expect(created.value(at: ["metadata", "namespace"]) == nil)

        var withStatus = created
        withStatus["status"] = .object([("metadataCache", .object([("note", .string("put"))]))])
        let afterPut = try await client.updateStatus(.istioMulticlusters, object: withStatus)
        #expect(afterPut.value(at: ["status", "metadataCache", "note"])?.stringValue == "put")

        let afterPatch = try await client.patchStatus(.istioMulticlusters, name: "peer-b", .merge(.object([
            ("status", .object([("conditions", .array([.object([("type", .string("Ready")), ("status", .string("True"))])]))])),
        ])))
        #expect(afterPatch.value(at: ["status", "conditions"])?.arrayValue?.first?["type"]?.stringValue == "Ready")
        #expect(kube.server.recentRequests.contains { $0.method == "PATCH" && $0.uri.hasSuffix("/istiomulticlusters/peer-b/status") })

        let list = try await client.list(.istioMulticlusters)
        #expect(list.items.map { $0.value(at: ["metadata", "name"])?.stringValue } == ["peer-b"])
        #expect(list.items.first?["kind"]?.stringValue == "IstioMulticluster")
        let deleted = try await client.delete(.istioMulticlusters, name: "peer-b")
        #expect(deleted["status"]?.stringValue == "Success")
        try await kube.shutdown()
    }

    @Test func listPagesThroughLimitWithSelectors() async throws {
        let kube = try await KubeTestServer.start()
        for i in 0..<25 {
            try kube.server.create(resource: "configmaps", object: configMap(
                String(format: "cm-%02d", i), namespace: i % 5 == 0 ? "kube-system" : "default",
                labels: ["parity": i % 2 == 0 ? "even" : "odd"]))
        }
        let all = try await kube.client.list(.configMaps, limit: 4)
        #expect(all.items.count == 25)
        #expect(all.pages == 7)
        #expect(Set(all.items.compactMap { $0.value(at: ["metadata", "name"])?.stringValue }).count == 25)
        #expect(all.items.allSatisfy { $0["kind"]?.stringValue == "ConfigMap" && $0["apiVersion"]?.stringValue == "v1" })
        #expect(UInt64(all.resourceVersion) == kube.server.resourceVersion)
        let pageRequests = kube.server.recentRequests.filter { $0.uri.hasPrefix("/api/v1/configmaps?") }
        #expect(pageRequests.count == 7)
        #expect(pageRequests.dropFirst().allSatisfy { $0.uri.contains("continue=") })

        let even = try await kube.client.list(.configMaps, namespace: "default", labelSelector: "parity=even", limit: 3)
        #expect(even.items.count == 10)  // 13 even, 3 of them (0, 10, 20) in kube-system
        let named = try await kube.client.list(.configMaps, namespace: "default", fieldSelector: "metadata.name=cm-07")
        #expect(named.items.map { $0.value(at: ["metadata", "name"])?.stringValue } == ["cm-07"])
        #expect(named.pages == 1)
        try await kube.shutdown()
    }
}


@Suite struct ConvenienceTests {
    @Test func modifyRetriesAConflictAndGetIfPresent() async throws {
        let kube = try await KubeTestServer.start()
        try kube.server.create(resource: "configmaps", object: configMap("counter", data: ["mine": "0"]))
        var calls = 0
        let stored = try await kube.client.modify(.configMaps, name: "counter") { object in
            calls += 1
            if calls == 1 {
                // Someone else writes between our read and our write.
                _ = try? kube.server.mergePatch(resource: "configmaps", namespace: "default", name: "counter",
                                                patch: .object([("data", .object([("theirs", .string("1"))]))]))
            }
            object.setValue(.string("1"), at: ["data", "mine"])
            return true
        }
        #expect(calls == 2)
        #expect(stored.value(at: ["data", "mine"])?.stringValue == "1")
        #expect(stored.value(at: ["data", "theirs"])?.stringValue == "1")

        // Returning false writes nothing.
        let before = kube.server.resourceVersion
        _ = try await kube.client.modify(.configMaps, name: "counter") { _ in false }
        #expect(kube.server.resourceVersion == before)

        #expect(try await kube.client.getIfPresent(.configMaps, name: "absent") == nil)
        #expect(try await kube.client.getIfPresent(.configMaps, name: "counter") != nil)
        try await kube.shutdown()
    }

    @Test func resolveFollowsKubectlsOrder() throws {
        let dir = try TemporaryDirectory()
        func kubeconfig(_ name: String, server: String) throws -> String {
            try dir.write(name, """
                clusters: [{name: c, cluster: {server: "\(server)"}}]
                contexts: [{name: x, context: {cluster: c}}]
                current-context: x
                """)
        }
        let flag = try kubeconfig("flag", server: "https://flag:1")
        let env = try kubeconfig("env", server: "https://env:2")
        try FileManager.default.createDirectory(atPath: dir.path + "/home/.kube", withIntermediateDirectories: true)
        _ = try kubeconfig("home/.kube/config", server: "https://home:3")
        _ = try dir.write("token", "t")
        _ = try dir.write("ca.crt", KubeconfigTests.certificates.caCertificatePEM)
        let pod = ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"]

        func server(_ kubeconfig: String?, _ environment: [String: String]) throws -> String {
            try KubeClientConfiguration.resolve(kubeconfig: kubeconfig, environment: environment, serviceAccountDirectory: dir.path).server
        }
        #expect(try server(flag, pod.merging(["KUBECONFIG": env]) { a, _ in a }) == "https://flag:1")
        #expect(try server(nil, pod.merging(["KUBECONFIG": ":\(env):\(flag)"]) { a, _ in a }) == "https://env:2")
        #expect(try server(nil, pod.merging(["HOME": dir.path + "/home"]) { a, _ in a }) == "https://10.0.0.1:443")
        #expect(try server(nil, ["HOME": dir.path + "/home"]) == "https://home:3")
    }
}
