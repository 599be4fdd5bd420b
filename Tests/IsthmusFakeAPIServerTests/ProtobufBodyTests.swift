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
        // A v1 Pod envelope (typeMeta {apiVersion "v1", kind "Pod"}, empty raw).
        let pod: [UInt8] = ProtobufBody.magic + [0x0A, 0x09, 0x0A, 0x02, 0x76, 0x31, 0x12, 0x03, 0x50, 0x6F, 0x64, 0x12, 0x00]
        #expect(throws: ProtobufBody.Failure.unsupportedKind("Pod")) { try ProtobufBody.decode(pod) }
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
        // Protobuf bodies of kinds not decoded here still get 415.
        let podBody = k.directory.appendingPathComponent("pod.pb")
        try Data(ProtobufBody.magic + [0x0A, 0x09, 0x0A, 0x02, 0x76, 0x31, 0x12, 0x03, 0x50, 0x6F, 0x64, 0x12, 0x00]).write(to: podBody)
        let pod = try await curl(k, ["-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/vnd.kubernetes.protobuf",
                                     "--data-binary", "@" + podBody.path, "https://127.0.0.1:\(k.server.port)/api/v1/namespaces/made-by-kubectl/pods"])
        #expect(pod.stdout == "415")
    }
}
