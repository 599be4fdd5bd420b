import Foundation
@testable import IsthmusFakeAPIServer
import IsthmusKubeTypes
import Testing

@Suite("protobuf request bodies from kubectl's typed generators", .serialized)
struct ProtobufBodyTests {
    /// Bodies kubectl 1.32 sent for `kubectl create namespace pbns` and
    /// `kubectl create configmap pbcm -n default --from-literal=a=b --from-literal=c=d`.
    static let namespaceBody = "azhzAAoPCgJ2MRIJTmFtZXNwYWNlEhwKFAoEcGJucxIAGgAiACoAMgA4AEIAEgAaAgoAGgAiAA=="
    static let configMapBody = "azhzAAoPCgJ2MRIJQ29uZmlnTWFwEi0KGwoEcGJjbRIAGgdkZWZhdWx0IgAqADIAOABCABIGCgFhEgFiEgYKAWMSAWQaACIA"

    func decode(_ base64: String) throws -> JSON {
        try ProtobufBody.decode(Array(try #require(Data(base64Encoded: base64))))
    }

    @Test("kubectl's recorded Namespace and ConfigMap bodies decode to the JSON objects they stand for")
    func recordedBodies() throws {
        #expect(try decode(Self.namespaceBody) == json(#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"pbns"}}"#))
        #expect(try decode(Self.configMapBody) == json(#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"pbcm","namespace":"default"},"data":{"a":"b","c":"d"}}"#))
    }

    @Test("other kinds are unsupported (415), broken bodies malformed (400)")
    func failures() throws {
        // A v1 PodTemplate envelope (typeMeta {apiVersion "v1", kind "PodTemplate"}, empty raw).
        #expect(throws: ProtobufBody.Failure.unsupportedKind("PodTemplate")) { try ProtobufBody.decode(envelope("v1", "PodTemplate", [])) }
        #expect(throws: ProtobufBody.Failure.unsupportedKind("apps/v1/StatefulSet")) {
            try ProtobufBody.decode(envelope("apps/v1", "StatefulSet", []))
        }
        var truncated = Array(try #require(Data(base64Encoded: Self.configMapBody)))
        truncated.removeLast(12)
        #expect(throws: ProtobufBody.Failure.self) { try ProtobufBody.decode(truncated) }
        #expect(throws: ProtobufBody.Failure.malformed("missing the k8s protobuf magic prefix")) { try ProtobufBody.decode(Array("{}".utf8)) }
    }

    @Test("kubectl create namespace|configmap|secret|serviceaccount work with protobuf bodies")
    func kubectlCreate() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        #expect(try await k.ok("create", "namespace", "made-by-kubectl").contains("namespace/made-by-kubectl created"))
        #expect(try k.server.get(resource: "namespaces", name: "made-by-kubectl").value(at: ["status", "phase"]) == .string("Active"))
        _ = try await k.ok("create", "configmap", "settings", "-n", "made-by-kubectl", "--from-literal=mode=fast", "--from-literal=level=3")
        let cm = try k.server.get(resource: "configmaps", namespace: "made-by-kubectl", name: "settings")
        #expect(cm["data"] == json(#"{"level":"3","mode":"fast"}"#) || cm["data"] == json(#"{"mode":"fast","level":"3"}"#))
        _ = try await k.ok("create", "secret", "generic", "creds", "-n", "made-by-kubectl", "--from-literal=password=s3cret")
        let secret = try k.server.get(resource: "secrets", namespace: "made-by-kubectl", name: "creds")
        #expect(secret.value(at: ["data", "password"]) == .string(Data("s3cret".utf8).base64EncodedString()))
        #expect(secret["type"] == .string("Opaque"))
        _ = try await k.ok("create", "secret", "docker-registry", "pull", "-n", "made-by-kubectl", "--docker-server=r.example", "--docker-username=u", "--docker-password=p")
        #expect(try k.server.get(resource: "secrets", namespace: "made-by-kubectl", name: "pull")["type"] == .string("kubernetes.io/dockerconfigjson"))
        _ = try await k.ok("create", "serviceaccount", "robot", "-n", "made-by-kubectl")
        _ = try k.server.get(resource: "serviceaccounts", namespace: "made-by-kubectl", name: "robot")
        #expect(k.server.recentRequests.filter { $0.method == "POST" && $0.header("content-type") == "application/vnd.kubernetes.protobuf" && $0.statusCode == 201 }.count == 5)
        // Protobuf bodies of kinds not decoded here still get 415, naming the kind and the JSON way around.
        let body = k.directory.appendingPathComponent("statefulset.pb")
        try Data(envelope("apps/v1", "StatefulSet", [])).write(to: body)
        let refused = try await curl(k, ["-w", "\n%{http_code}", "-H", "Content-Type: application/vnd.kubernetes.protobuf",
                                         "--data-binary", "@" + body.path,
                                         "https://127.0.0.1:\(k.server.port)/apis/apps/v1/namespaces/made-by-kubectl/statefulsets"])
        #expect(refused.stdout.hasSuffix("\n415"), "\(refused.stdout)")
        #expect(refused.stdout.contains("apps/v1/StatefulSet") && refused.stdout.contains("-o json | kubectl apply -f -"), "\(refused.stdout)")
    }

    /// GET of Service fx/a from kube-apiserver 1.32 as protobuf (kube-fixtures 33-get-protobuf.bin, byte-exact),
    /// and that Service's spec as the same server wrote it in JSON (fixture 28e, item a).
    static let recordedServiceGet = "azhzAAoNCgJ2MRIHU2VydmljZRKuBAqqAwoBYRIAGgJmeCIAKiQxYjkxMDQwYy0zNGJiLTQzYTItYjc4Ny03OTNjZmJjMWE5YzAyAzQ5MzgAQggI5aSc2AYQAFoJCgNhcHASAmZ4Wg0KBHRpZXISBWZyb250igHKAgoNa3ViZS1maXh0dXJlcxIGVXBkYXRlGgJ2MSIICOWknNgGEAAyCEZpZWxkc1YxOpYCCpMCeyJmOm1ldGFkYXRhIjp7ImY6bGFiZWxzIjp7Ii4iOnt9LCJmOmFwcCI6e30sImY6dGllciI6e319fSwiZjpzcGVjIjp7ImY6aW50ZXJuYWxUcmFmZmljUG9saWN5Ijp7fSwiZjpwb3J0cyI6eyIuIjp7fSwiazp7XCJwb3J0XCI6ODAsXCJwcm90b2NvbFwiOlwiVENQXCJ9Ijp7Ii4iOnt9LCJmOm5hbWUiOnt9LCJmOnBvcnQiOnt9LCJmOnByb3RvY29sIjp7fSwiZjp0YXJnZXRQb3J0Ijp7fX19LCJmOnNlbGVjdG9yIjp7fSwiZjpzZXNzaW9uQWZmaW5pdHkiOnt9LCJmOnR5cGUiOnt9fX1CABJ7ChcKBGh0dHASA1RDUBhQIgYIABBQGgAoABIJCgNhcHASAmZ4GgwxMC4xMDQuMzIuMjYiCUNsdXN0ZXJJUDoETm9uZUIAUgBaAGAAaACKAQtTaW5nbGVTdGFja5IBDDEwLjEwNC4zMi4yNpoBBElQdjSyAQdDbHVzdGVyGgIKABoAIgA="
    static let recordedServiceSpecJSON = #"{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":80}],"selector":{"app":"fx"},"clusterIP":"10.104.32.26","clusterIPs":["10.104.32.26"],"type":"ClusterIP","sessionAffinity":"None","ipFamilies":["IPv4"],"ipFamilyPolicy":"SingleStack","internalTrafficPolicy":"Cluster"}"#

    @Test("the Service kube-apiserver encoded as protobuf decodes to the spec it wrote as JSON")
    func recordedService() throws {
        let service = try decode(Self.recordedServiceGet)
        #expect(service["kind"] == .string("Service") && service["apiVersion"] == .string("v1"))
        #expect(service["spec"]?.sortedKeys() == json(Self.recordedServiceSpecJSON).sortedKeys(), "\(service)")
        #expect(service.value(at: ["metadata", "name"]) == .string("a") && service.value(at: ["metadata", "namespace"]) == .string("fx"))
        #expect(service.value(at: ["metadata", "labels"])?.sortedKeys() == json(#"{"app":"fx","tier":"front"}"#))
        #expect(service["status"] == nil, "status is the server's")
    }

    @Test("kubectl create service and create deployment send protobuf that is stored as kubectl meant it; kubectl run too")
    func kubectlTypedGenerators() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "namespace", "pb")
        #expect(try await k.ok("-n", "pb", "create", "service", "clusterip", "h2", "--tcp=81:8081").contains("service/h2 created"))
        let service = try k.server.get(resource: "services", namespace: "pb", name: "h2")
        #expect(service["spec"]?.sortedKeys() == json(#"{"ports":[{"name":"81-8081","port":81,"protocol":"TCP","targetPort":8081}],"selector":{"app":"h2"},"sessionAffinity":"None","type":"ClusterIP"}"#).sortedKeys(), "\(service)")
        _ = try await k.ok("-n", "pb", "create", "service", "nodeport", "np", "--tcp=80:http", "--node-port=30080")
        let nodePort = try k.server.get(resource: "services", namespace: "pb", name: "np")
        #expect(nodePort.value(at: ["spec", "ports"]) == json(#"[{"name":"80-http","nodePort":30080,"port":80,"protocol":"TCP","targetPort":"http"}]"#).sortedKeys()
                || nodePort.value(at: ["spec", "ports"])?.sortedKeys() == json(#"[{"name":"80-http","nodePort":30080,"port":80,"protocol":"TCP","targetPort":"http"}]"#).sortedKeys(), "\(nodePort)")

        #expect(try await k.ok("-n", "pb", "create", "deployment", "web", "--image=nginx:1.27", "--replicas=0", "--port=80")
            .contains("deployment.apps/web created"))
        let deployment = try k.server.get(resource: "deployments", group: "apps", namespace: "pb", name: "web")
        #expect(deployment.value(at: ["spec", "replicas"]) == .int(0), "a pointer field keeps its zero: \(deployment)")
        #expect(deployment.value(at: ["spec", "selector"])?.sortedKeys() == json(#"{"matchLabels":{"app":"web"}}"#))
        let container = deployment.value(at: ["spec", "template", "spec", "containers"])?.arrayValue?.first
        #expect(container?["image"] == .string("nginx:1.27") && container?["name"] == .string("nginx"), "\(deployment)")
        #expect(container?["ports"] == json(#"[{"containerPort":80}]"#))

        _ = try await k.ok("-n", "pb", "run", "task", "--image=busybox", "--env=MODE=fast", "--labels=app=task", "--", "sleep", "60")
        let pod = try k.server.get(resource: "pods", namespace: "pb", name: "task")
        let podContainer = pod.value(at: ["spec", "containers"])?.arrayValue?.first
        #expect(podContainer?["args"] == json(#"["sleep","60"]"#) && podContainer?["env"] == json(#"[{"name":"MODE","value":"fast"}]"#), "\(pod)")
        #expect(pod.value(at: ["spec", "restartPolicy"]) == .string("Always") && pod.value(at: ["metadata", "labels", "app"]) == .string("task"))

        let table = try await k.ok("-n", "pb", "get", "deployments")
        #expect(table.contains("READY") && table.contains("0/0"), "\(table)")
        // kubectl sent these as protobuf (`kubectl run` sends its Pod as JSON; client-go's
        // typed clients send Pods as protobuf, as handEncodedKinds and unknownFields decode them).
        for path in ["/apis/apps/v1/namespaces/pb/deployments", "/api/v1/namespaces/pb/services"] {
            #expect(k.server.recentRequests.contains {
                $0.method == "POST" && $0.uri.hasPrefix(path) && $0.header("content-type") == "application/vnd.kubernetes.protobuf" && $0.statusCode == 201
            }, "\(path)")
        }
    }

    @Test("apps/v1 is served: kubectl apply -f of a Deployment, then again with a new image, merges by container name")
    func applyDeployment() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "namespace", "apps")
        let manifest = k.directory.appendingPathComponent("deployment.yaml")
        func write(image: String) throws {
            try """
                apiVersion: apps/v1
                kind: Deployment
                metadata: {name: web, namespace: apps}
                spec:
                  replicas: 2
                  selector: {matchLabels: {app: web}}
                  template:
                    metadata: {labels: {app: web}}
                    spec:
                      containers:
                      - {name: web, image: \(image)}
                      - {name: side, image: busybox}
                """.write(to: manifest, atomically: true, encoding: .utf8)
        }
        try write(image: "nginx:1.26")
        #expect(try await k.ok("apply", "-f", manifest.path).contains("deployment.apps/web created"))
        try write(image: "nginx:1.27")
        #expect(try await k.ok("apply", "-f", manifest.path).contains("deployment.apps/web configured"))
        let images = try await k.ok("-n", "apps", "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[*].image}")
        #expect(images == "nginx:1.27 busybox")
        let table = try await k.ok("-n", "apps", "get", "deploy,rs")
        #expect(table.contains("deployment.apps/web") && table.contains("0/2"), "\(table)")
    }

    @Test("Node, Endpoints and EndpointSlice bodies, as client-go encodes them, decode with their own port numbering")
    func handEncodedKinds() throws {
        let node = try ProtobufBody.decode(envelope("v1", "Node", message([
            (1, .bytes(message([(1, .text("n1"))]))),
            (2, .bytes(message([(1, .text("10.0.0.0/24")), (4, .varint(1)), (5, .bytes(message([(1, .text("k")), (3, .text("NoSchedule"))]))),
                                (7, .text("10.0.0.0/24"))]))),
            (3, .bytes(message([(3, .text("Running"))]))),
        ])))
        #expect(node == json(#"{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1"},"spec":{"podCIDR":"10.0.0.0/24","unschedulable":true,"taints":[{"key":"k","effect":"NoSchedule"}],"podCIDRs":["10.0.0.0/24"]}}"#))

        // core/v1 EndpointPort: name 1, port 2, protocol 3.
        let endpoints = try ProtobufBody.decode(envelope("v1", "Endpoints", message([
            (1, .bytes(message([(1, .text("web")), (3, .text("demo"))]))),
            (2, .bytes(message([
                (1, .bytes(message([(1, .text("10.1.0.5")), (4, .text("n1"))]))),
                (2, .bytes(message([(1, .text("10.1.0.6"))]))),
                (3, .bytes(message([(1, .text("http")), (2, .varint(8080)), (3, .text("TCP"))]))),
            ]))),
        ])))
        #expect(endpoints == json(#"{"kind":"Endpoints","apiVersion":"v1","metadata":{"name":"web","namespace":"demo"},"subsets":[{"addresses":[{"ip":"10.1.0.5","nodeName":"n1"}],"notReadyAddresses":[{"ip":"10.1.0.6"}],"ports":[{"name":"http","port":8080,"protocol":"TCP"}]}]}"#))

        // discovery/v1 EndpointPort: name 1, protocol 2, port 3; ready is a pointer, so false is kept.
        let slice = try ProtobufBody.decode(envelope("discovery.k8s.io/v1", "EndpointSlice", message([
            (1, .bytes(message([(1, .text("web-x1")), (3, .text("demo")), (11, .bytes(message([(1, .text("kubernetes.io/service-name")), (2, .text("web"))])))]))),
            (2, .bytes(message([(1, .text("10.1.0.5")), (2, .bytes(message([(1, .varint(0))]))), (6, .text("n1"))]))),
            (3, .bytes(message([(1, .text("http")), (2, .text("TCP")), (3, .varint(8080))]))),
            (4, .text("IPv4")),
        ])))
        #expect(slice == json(#"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"web-x1","namespace":"demo","labels":{"kubernetes.io/service-name":"web"}},"endpoints":[{"addresses":["10.1.0.5"],"conditions":{"ready":false},"nodeName":"n1"}],"ports":[{"name":"http","protocol":"TCP","port":8080}],"addressType":"IPv4"}"#))
    }

    @Test("a field of a known kind that is not decoded is refused, never dropped; an empty one is ignored")
    func unknownFields() throws {
        // PodSpec.volumes (1) with a volume: refused with its path.
        let withVolume = envelope("v1", "Pod", message([
            (1, .bytes(message([(1, .text("p"))]))),
            (2, .bytes(message([(1, .bytes(message([(1, .text("data"))])))]))),
        ]))
        #expect(throws: ProtobufBody.Failure.unsupportedField("spec.(1)")) { try ProtobufBody.decode(withVolume) }
        // Go writes every non-pointer field: empty ones (securityContext {}, zero ints) are no loss.
        let empty = envelope("v1", "Pod", message([
            (1, .bytes(message([(1, .text("p"))]))),
            (2, .bytes(message([(2, .bytes(message([(1, .text("c")), (2, .text("busybox"))]))), (14, .bytes([])), (12, .varint(0))]))),
        ]))
        #expect(try ProtobufBody.decode(empty) == json(#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#))
    }
}

private enum Wire {
    case varint(UInt64)
    case text(String)
    case bytes([UInt8])
}

private func varint(_ value: UInt64) -> [UInt8] {
    var v = value
    var out: [UInt8] = []
    repeat {
        var byte = UInt8(v & 0x7F)
        v >>= 7
        if v != 0 { byte |= 0x80 }
        out.append(byte)
    } while v != 0
    return out
}

/// A protobuf message from (field number, value) pairs, in order.
private func message(_ fields: [(Int, Wire)]) -> [UInt8] {
    var out: [UInt8] = []
    for (number, value) in fields {
        switch value {
        case .varint(let v):
            out += varint(UInt64(number << 3)) + varint(v)
        case .text(let s):
            out += varint(UInt64(number << 3 | 2)) + varint(UInt64(s.utf8.count)) + Array(s.utf8)
        case .bytes(let b):
            out += varint(UInt64(number << 3 | 2)) + varint(UInt64(b.count)) + b
        }
    }
    return out
}

/// The `k8s\0` + runtime.Unknown envelope around `raw`.
private func envelope(_ apiVersion: String, _ kind: String, _ raw: [UInt8]) -> [UInt8] {
    ProtobufBody.magic + message([
        (1, .bytes(message([(1, .text(apiVersion)), (2, .text(kind))]))),
        (2, .bytes(raw)),
    ])
}
