import Foundation
@testable import IsthmusFakeAPIServer
import IsthmusKubeTypes
import Testing

@Suite("Strategic merge patch")
struct StrategicMergeTests {
    func merge(_ original: String, _ patch: String, kind: String = "Pod") throws -> JSON {
        try StrategicMerge.apply(json(original), json(patch), kind: kind)
    }

    @Test("Service ports merge by port, labels merge, as in fixture 21")
    func servicePorts() throws {
        let out = try merge(#"{"metadata":{"labels":{"app":"fx"}},"spec":{"ports":[{"name":"http","port":81,"protocol":"TCP","targetPort":81}]}}"#,
                            #"{"metadata":{"labels":{"patched":"strategic"}},"spec":{"ports":[{"name":"https","port":443,"targetPort":8443}]}}"#,
                            kind: "Service")
        #expect(out.value(at: ["metadata", "labels"]) == json(#"{"app":"fx","patched":"strategic"}"#))
        #expect(out.value(at: ["spec", "ports"]) == json(#"[{"name":"http","port":81,"protocol":"TCP","targetPort":81},{"name":"https","port":443,"targetPort":8443}]"#))
        // The same list elsewhere (EndpointSlice ports are atomic) is replaced.
        let slice = try merge(#"{"ports":[{"port":1}]}"#, #"{"ports":[{"port":2}]}"#, kind: "EndpointSlice")
        #expect(slice["ports"] == json(#"[{"port":2}]"#))
    }

    @Test("containers by name, their env by name and ports by containerPort; null deletes a field")
    func containers() throws {
        let pod = #"{"spec":{"containers":[{"name":"a","image":"a:1","env":[{"name":"X","value":"1"},{"name":"Y","value":"2"}],"ports":[{"containerPort":80}]},{"name":"b","image":"b:1","args":["x"]}]}}"#
        let out = try merge(pod, #"{"spec":{"containers":[{"name":"a","image":"a:2","env":[{"name":"Y","value":"3"},{"name":"Z","value":"4"}],"ports":[{"containerPort":443}]},{"name":"b","args":null}]}}"#)
        let containers = try #require(out.value(at: ["spec", "containers"])?.arrayValue)
        #expect(containers.count == 2)
        #expect(containers[0]["image"] == .string("a:2"))
        #expect(containers[0]["env"] == json(#"[{"name":"X","value":"1"},{"name":"Y","value":"3"},{"name":"Z","value":"4"}]"#))
        #expect(containers[0]["ports"] == json(#"[{"containerPort":80},{"containerPort":443}]"#))
        #expect(containers[1] == json(#"{"name":"b","image":"b:1"}"#))
    }

    @Test("$patch delete and replace, on elements, lists and maps")
    func directives() throws {
        let pod = #"{"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"volumes":[{"name":"v1","emptyDir":{}},{"name":"v2","emptyDir":{}}],"containers":[{"name":"a"},{"name":"b"}]}}"#
        let deleted = try merge(pod, #"{"spec":{"volumes":[{"name":"v1","$patch":"delete"}]}}"#)
        #expect(deleted.value(at: ["spec", "volumes"]) == json(#"[{"name":"v2","emptyDir":{}}]"#))
        let replacedList = try merge(pod, #"{"spec":{"containers":[{"$patch":"replace"},{"name":"c"}]}}"#)
        #expect(replacedList.value(at: ["spec", "containers"]) == json(#"[{"name":"c"}]"#))
        let replacedMap = try merge(pod, #"{"metadata":{"labels":{"$patch":"replace","c":"3"}}}"#)
        #expect(replacedMap.value(at: ["metadata", "labels"]) == json(#"{"c":"3"}"#))
        let deletedMap = try merge(pod, #"{"metadata":{"labels":{"$patch":"delete"}}}"#)
        #expect(deletedMap.value(at: ["metadata", "labels"]) == nil)
    }

    @Test("ownerReferences by uid, conditions by type, finalizers as a set, $deleteFromPrimitiveList, $setElementOrder, $retainKeys")
    func otherKeys() throws {
        let object = #"{"metadata":{"finalizers":["a","b"],"ownerReferences":[{"uid":"1","name":"x"},{"uid":"2","name":"y"}]},"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"Synced","status":"True"}]}}"#
        let out = try merge(object, #"{"metadata":{"finalizers":["c","a"],"ownerReferences":[{"uid":"2","name":"z"}],"$deleteFromPrimitiveList/finalizers":["b"]},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#)
        #expect(out.value(at: ["metadata", "finalizers"]) == json(#"["a","c"]"#))
        #expect(out.value(at: ["metadata", "ownerReferences"]) == json(#"[{"uid":"1","name":"x"},{"uid":"2","name":"z"}]"#))
        #expect(out.value(at: ["status", "conditions"]) == json(#"[{"type":"Ready","status":"True"},{"type":"Synced","status":"True"}]"#))
        let ordered = try merge(#"{"spec":{"ports":[{"port":1},{"port":2}]}}"#,
                                #"{"spec":{"$setElementOrder/ports":[{"port":3},{"port":2},{"port":1}],"ports":[{"port":3}]}}"#, kind: "Service")
        #expect(ordered.value(at: ["spec", "ports"]) == json(#"[{"port":3},{"port":2},{"port":1}]"#))
        let retained = try merge(#"{"spec":{"type":"ClusterIP","clusterIP":"10.0.0.1","externalName":"x"}}"#,
                                 #"{"spec":{"$retainKeys":["type","externalName"],"type":"ExternalName"}}"#, kind: "Service")
        #expect(retained["spec"] == json(#"{"type":"ExternalName","externalName":"x"}"#))
        #expect(throws: StrategicMerge.Failure.self) { try merge(object, #"{"status":{"conditions":[{"status":"True"}]}}"#) }
    }

    @Test("kubectl patch (strategic by default), label and annotate; a custom resource gets the 415 of the real server")
    func kubectl() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("ns.yaml", namespaceYAML))
        _ = try await k.ok("create", "-f", try k.file("svc.yaml", serviceYAML))
        _ = try await k.ok("create", "-f", try k.file("pod.yaml", """
            apiVersion: v1
            kind: Pod
            metadata: {name: web-0, namespace: demo}
            spec:
              containers:
              - {name: app, image: "app:1", env: [{name: MODE, value: a}]}
              - {name: sidecar, image: "proxy:1"}

            """))
        #expect(try await k.ok("patch", "service", "web", "-n", "demo", "-p", #"{"spec":{"ports":[{"name":"https","port":443,"targetPort":8443}]}}"#).contains("service/web patched"))
        let ports = try k.server.get(resource: "services", namespace: "demo", name: "web").value(at: ["spec", "ports"])?.arrayValue ?? []
        #expect(ports.compactMap { $0["port"]?.intValue } == [80, 443])
        _ = try await k.ok("patch", "pod", "web-0", "-n", "demo", "-p", #"{"spec":{"containers":[{"name":"app","env":[{"name":"LEVEL","value":"2"}]}]}}"#)
        let pod = try k.server.get(resource: "pods", namespace: "demo", name: "web-0")
        #expect(pod.value(at: ["spec", "containers"])?.arrayValue?.count == 2)
        #expect(pod.value(at: ["spec", "containers"])?.arrayValue?.first?["env"] == json(#"[{"name":"MODE","value":"a"},{"name":"LEVEL","value":"2"}]"#))
        _ = try await k.ok("patch", "service", "web", "-n", "demo", "-p", #"{"spec":{"ports":[{"port":80,"$patch":"delete"}]}}"#)
        #expect(try k.server.get(resource: "services", namespace: "demo", name: "web").value(at: ["spec", "ports"])?.arrayValue?.compactMap { $0["port"]?.intValue } == [443])

        #expect(try await k.ok("label", "pod", "web-0", "-n", "demo", "tier=front").contains("pod/web-0 labeled"))
        #expect(try await k.ok("annotate", "pod", "web-0", "-n", "demo", "note=hi").contains("pod/web-0 annotated"))
        #expect(try await k.ok("label", "pod", "web-0", "-n", "demo", "tier-").contains("pod/web-0 unlabeled"))
        let labelled = try k.server.get(resource: "pods", namespace: "demo", name: "web-0")
        #expect(labelled.value(at: ["metadata", "labels", "tier"]) == nil)
        #expect(labelled.value(at: ["metadata", "annotations", "note"]) == .string("hi"))
        #expect(k.server.recentRequests.contains { $0.method == "PATCH" && $0.header("content-type") == "application/strategic-merge-patch+json" })

        // apply dropping a port from the manifest: $setElementOrder and a delete directive from kubectl.
        let applied = serviceYAML.replacingOccurrences(of: "ports: [{name: http, port: 80, targetPort: 8080}]",
                                                       with: "ports: [{name: http, port: 80, targetPort: 8080}, {name: admin, port: 9000}]")
        _ = try await k.ok("apply", "-f", try k.file("svc-a.yaml", applied))
        #expect(try k.server.get(resource: "services", namespace: "demo", name: "web").value(at: ["spec", "ports"])?.arrayValue?.compactMap { $0["port"]?.intValue } == [80, 9000, 443])
        _ = try await k.ok("apply", "-f", try k.file("svc-b.yaml", serviceYAML))
        // 443 was never in an applied manifest, so apply leaves it; 9000 left the manifest, so it goes.
        #expect(try k.server.get(resource: "services", namespace: "demo", name: "web").value(at: ["spec", "ports"])?.arrayValue?.compactMap { $0["port"]?.intValue } == [80, 443])

        _ = try await k.ok("create", "-f", try k.file("crd.yaml", """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: istiomulticlusters.deckhouse.io}
            spec:
              group: deckhouse.io
              scope: Cluster
              names: {plural: istiomulticlusters, singular: istiomulticluster, kind: IstioMulticluster}
              versions:
              - {name: v1alpha1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}

            """))
        _ = try await k.ok("create", "-f", try k.file("cr.yaml", "apiVersion: deckhouse.io/v1alpha1\nkind: IstioMulticluster\nmetadata: {name: remote}\nspec: {a: 1}\n"))
        let refused = try await k.run("patch", "istiomulticluster", "remote", "-p", #"{"spec":{"a":2}}"#)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("application/strategic-merge-patch+json is not supported by deckhouse.io/v1alpha1, Kind=IstioMulticluster: the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"), "\(refused)")
        // The media type is refused before the object is looked up: a missing object is 415 too.
        let missing = try await curl(k, ["-X", "PATCH", "-H", "Content-Type: application/strategic-merge-patch+json", "--data", "{}",
                                         "https://127.0.0.1:\(k.server.port)/apis/deckhouse.io/v1alpha1/istiomulticlusters/missing"])
        #expect(missing.stdout.contains(#""reason":"UnsupportedMediaType""#) && missing.stdout.contains(#""code":415"#), "\(missing.stdout)")
        // kubectl label on a custom resource uses a merge patch.
        #expect(try await k.ok("label", "istiomulticluster", "remote", "step=2").contains("labeled"))
    }

    /// Yams' own integer conversion traps on a sexagesimal number that overflows (FuzzKubeconfig
    /// found it in the kubeconfig reader); an applied YAML body keeps such a value as a string, as Go does.
    @Test("an applied YAML body keeps a sexagesimal-looking value as a string; decimal integers stay numbers")
    func sexagesimalStaysAString() throws {
        let json = try ApplyDocument.parse(Array("a: 1:2:3:4:5:6:7:8:9:10:11\nb: 1:20\nc: 42\n".utf8))
        #expect(json["a"] == .string("1:2:3:4:5:6:7:8:9:10:11"))
        #expect(json["b"] == .string("1:20"))
        #expect(json["c"] == .int(42))
    }

}
