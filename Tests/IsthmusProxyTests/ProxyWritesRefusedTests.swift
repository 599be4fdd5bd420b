import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusProxy
import Testing

@Suite("Proxy: kubectl's writes and streams are refused with 403", .serialized)
struct ProxyWritesRefusedTests {
    @Test("create, create -f, apply (client- and server-side), exec and port-forward: 403, and the upstream never sees them")
    func writesAndStreamsRefused() async throws {
        let h = try await ProxyHarness.start()
        do {
            try h.upstream.create(resource: "pods", object: .object([
                ("metadata", .object([("name", .string("web-0")), ("namespace", .string("demo"))])),
                ("spec", .object([("containers", .array([.object([("name", .string("web")), ("image", .string("nginx"))])]))])),
                // kubectl port-forward checks the phase before it asks.
                ("status", .object([("phase", .string("Running"))])),
            ]))
            let before = try h.upstream.get(resource: "services", namespace: "demo", name: "web")
            let manifest = h.directory.appendingPathComponent("web.yaml")
            try """
                apiVersion: v1
                kind: Service
                metadata: {name: web, namespace: demo, labels: {edited: "yes"}}
                spec: {ports: [{port: 8080}]}

                """.write(to: manifest, atomically: true, encoding: .utf8)
            // Without --validate=false kubectl stops earlier, at the OpenAPI download
            // the shipped policy does not allow; the point here is the write itself.
            let attempts: [(what: String, args: [String], refusal: String)] = [
                ("create configmap", ["create", "configmap", "x", "-n", "demo", "--from-literal=a=b"], "never allows POST"),
                ("create -f", ["create", "--validate=false", "-f", manifest.path], "never allows POST"),
                ("apply", ["apply", "--validate=false", "-f", manifest.path], "never allows PATCH"),
                ("apply --server-side", ["apply", "--server-side", "--validate=false", "-f", manifest.path], "never allows PATCH"),
                // kubectl tries a WebSocket upgrade first (refused: no upgrades), then SPDY's POST.
                ("exec", ["exec", "-n", "demo", "web-0", "--", "ls"], "never allows POST"),
                ("port-forward", ["port-forward", "-n", "demo", "pod/web-0", ":80"], "never allows POST"),
            ]
            for attempt in attempts {
                let result = try await h.run(ProxyHarness.kubectlPath, h.kubectlArguments(["--request-timeout=20s"] + attempt.args))
                #expect(result.status != 0, "\(attempt.what): \(result)")
                #expect(result.stderr.contains("is forbidden: the Isthmus proxy is read-only and \(attempt.refusal)"),
                        "\(attempt.what): \(result)")
            }
            let raw = try await h.curl("/api/v1/namespaces/demo/pods/web-0/exec?command=ls&stdout=true", token: h.peerToken,
                                       method: "POST")
            #expect(raw.code == 403 && raw.body.contains(#""reason":"Forbidden""#) && raw.body.contains(#""code":403"#), "\(raw)")

            let seen = h.upstream.recentRequests
            #expect(!seen.contains { $0.method != "GET" && $0.method != "HEAD" }, "\(seen.map { "\($0.method) \($0.uri)" })")
            #expect(!seen.contains { $0.uri.contains("/exec") || $0.uri.contains("/portforward") },
                    "\(seen.map { "\($0.method) \($0.uri)" })")
            // The reads before each write did go through: kubectl got as far as the write.
            #expect(seen.contains { $0.uri.hasPrefix("/api/v1/namespaces/demo/pods/web-0") })
            let after = try h.upstream.get(resource: "services", namespace: "demo", name: "web")
            #expect(after.value(at: ["metadata", "resourceVersion"])?.stringValue
                    == before.value(at: ["metadata", "resourceVersion"])?.stringValue)
        }
        await h.stop()
    }
}
