import Foundation
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeClient
import IsthmusKubeTypes
@testable import IsthmusMetadata
import IsthmusTestSupport
import IsthmusTrust
import Testing

/// The embedded API server over TLS, a kubeconfig for it (as `isthmus
/// apiserver --kubeconfig-out` writes one) and a client for the test's own
/// writes, which go over the same wire as a controller's would.
struct KubeFixture {
    static let namespace = "istio-system"
    let server: FakeAPIServer
    let client: KubeClient
    let kubeconfig: String
    private let stopped = StopOnce()

    static func start() async throws -> KubeFixture {
        var configuration = FakeAPIServer.Configuration(tokens: ["metadata-test-token": "admin"])
        configuration.threads = 1
        let server = try await FakeAPIServer.start(configuration)
        let ca = try #require(server.caCertificatePEM)
        let kubeconfig = FileManager.default.temporaryDirectory.appendingPathComponent("kubeconfig-\(UUID().uuidString)").path
        try """
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster: {server: "\(server.url)", certificate-authority-data: \(Data(ca.utf8).base64EncodedString())}
            users:
            - name: metadata
              user: {token: metadata-test-token}
            contexts:
            - name: fake
              context: {cluster: fake, user: metadata}
            current-context: fake

            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let client = try KubeClient(configuration: .kubeconfig(path: kubeconfig))
        _ = try await client.create(.namespaces, object: try JSON(parsing: #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"istio-system"}}"#))
        return KubeFixture(server: server, client: client, kubeconfig: kubeconfig)
    }

    /// Shuts the API server down (once, so a test may do it early).
    func stopServer() async {
        guard stopped.first() else { return }
        try? await server.shutdown()
    }

    func stop() async {
        await stopServer()
        try? FileManager.default.removeItem(atPath: kubeconfig)
    }

    func create(_ resource: KubeResource, _ json: String) async throws {
        _ = try await client.create(resource, namespace: nil, object: try JSON(parsing: json))
    }

    func rootCAConfigMap(_ pem: String) -> String {
        let data = JSON.object([(KubeMetadataSources.rootCAKey, .string(pem))])
        return #"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"istio-ca-root-cert","namespace":"istio-system"},"data":"#
            + String(decoding: data.bytes(), as: UTF8.self) + "}"
    }

    /// A metadata service reading its root CA and gateways from this API server.
    /// Gateways are only re-polled hourly, so a change seen sooner came by watch.
    func metadataService(_ edit: (inout MetadataSettings) -> Void = { _ in }) async throws -> MetadataHarness {
        try await MetadataHarness.start { configuration in
            configuration.flags.ingressGateways = nil
            configuration.flags.rootCAFile = nil
            configuration.flags.kubeconfig = kubeconfig
            configuration.flags.rootCAConfigMap = "istio-system/istio-ca-root-cert"
            configuration.flags.ingressGatewayService = "istio-system/istio-ingressgateway"
            configuration.gatewayRefreshInterval = .seconds(3600)
            configuration.kubernetesSyncTimeout = .seconds(60)
            edit(&configuration.flags)
        }
    }
}

extension MetadataHarness {
    /// The gateways of the private document as a peer reads it (curl, a valid token).
    func servedGateways() async throws -> [String] {
        let reply = try await curl("/metadata/private/multicluster.json", token: token(scope: .privateMulticluster))
        guard reply.code == 200, let gateways = reply.json?["ingressGateways"]?.arrayValue else { return ["HTTP \(reply.code)"] }
        return gateways.map { "\($0["address"]?.stringValue ?? "?"):\($0["port"]?.intValue ?? -1)" }
    }

    func servedRootCA() async throws -> String? {
        try await curl("/metadata/public/public.json").json?["rootCA"]?.stringValue
    }
}

@Suite("isthmus metadata reading the Kubernetes API (embedded API server over TLS)", .serialized)
struct KubeMetadataSourcesTests {
    static let loadBalancer = """
        {"apiVersion":"v1","kind":"Service","metadata":{"name":"istio-ingressgateway","namespace":"istio-system"},
         "spec":{"type":"LoadBalancer","selector":{"istio":"ingressgateway"},
                 "ports":[{"name":"status-port","port":15021},{"name":"tls","port":15443,"nodePort":31443}]},
         "status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.30"}]}}}
        """

    @Test("LoadBalancer ingress is published; a changed ingress is republished by watch; an API outage keeps the last good list")
    func loadBalancer() async throws {
        let kube = try await KubeFixture.start()
        defer { Task { await kube.stop() } }
        let rootCA = try ServingCertificates.generate(commonName: "istio-root-1").caCertificatePEM
        try await kube.create(.configMaps, kube.rootCAConfigMap(rootCA))
        try await kube.create(.services, Self.loadBalancer)

        let harness = try await kube.metadataService()
        defer { Task { await harness.stop() } }
        #expect(try await harness.servedGateways() == ["203.0.113.30:15443"])
        #expect(try await harness.servedRootCA() == rootCA)
        // A LoadBalancer needs no pods or nodes, so they are not listed (nor held in memory).
        let paths = kube.server.recentRequests.map(\.uri)
        #expect(paths.contains { $0.hasPrefix("/api/v1/namespaces/istio-system/services?") })
        #expect(!paths.contains { $0.contains("/nodes") || $0.contains("/pods") }, "\(paths)")

        // The cloud's load balancer moves: the status subresource changes.
        let started = ContinuousClock.now
        _ = try await kube.client.patchStatus(
            .services, namespace: "istio-system", name: "istio-ingressgateway",
            .merge(try JSON(parsing: #"{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.31"},{"hostname":"gw.example.com"}]}}}"#)))
        var served: [String] = []
        await eventually("the new ingress is served", deadline: .seconds(60)) {
            served = (try? await harness.servedGateways()) ?? []
            return served == ["203.0.113.31:15443", "gw.example.com:15443"]
        }
        #expect(served == ["203.0.113.31:15443", "gw.example.com:15443"])
        print("metadata: ingress change served after \(ContinuousClock.now - started)")

        // The API server goes away: the documents stay, and the log says why.
        await kube.stopServer()
        await eventually("the API failure is logged", deadline: .seconds(60)) {
            harness.log.messages.contains { $0.hasPrefix("kubernetes API: service istio-system/istio-ingressgateway:") }
        }
        _ = await harness.service.reloadNow()
        #expect(try await harness.servedGateways() == ["203.0.113.31:15443", "gw.example.com:15443"])
        #expect(try await harness.servedRootCA() == rootCA)
        #expect(!harness.log.lines.contains { $0.contains("metadata-test-token") })
    }

    @Test("NodePort: the nodePort on each ready, schedulable node running a ready gateway pod; a pod turning unready drops its node")
    func nodePort() async throws {
        let kube = try await KubeFixture.start()
        defer { Task { await kube.stop() } }
        try await kube.create(.configMaps, kube.rootCAConfigMap(MetadataFixtures.rootCA))
        try await kube.create(.services, Self.loadBalancer.replacingOccurrences(of: #""type":"LoadBalancer""#, with: #""type":"NodePort""#)
            .replacingOccurrences(of: #""ingress":[{"ip":"203.0.113.30"}]"#, with: #""ingress":[]"#))
        func node(_ name: String, ready: Bool = true, unschedulable: Bool = false, addresses: [(String, String)]) -> String {
            let list = addresses.map { #"{"type":"\#($0.0)","address":"\#($0.1)"}"# }.joined(separator: ",")
            return #"{"apiVersion":"v1","kind":"Node","metadata":{"name":"\#(name)"},"spec":{"unschedulable":\#(unschedulable)},"#
                + #""status":{"conditions":[{"type":"Ready","status":"\#(ready ? "True" : "False")"}],"addresses":[\#(list)]}}"#
        }
        try await kube.create(.nodes, node("node-a", addresses: [("InternalIP", "10.0.0.1"), ("ExternalIP", "198.51.100.1")]))
        try await kube.create(.nodes, node("node-b", addresses: [("InternalIP", "10.0.0.2")]))
        try await kube.create(.nodes, node("node-c", ready: false, addresses: [("ExternalIP", "198.51.100.3")]))
        try await kube.create(.nodes, node("node-d", unschedulable: true, addresses: [("ExternalIP", "198.51.100.4")]))
        try await kube.create(.nodes, node("node-e", addresses: [("ExternalIP", "198.51.100.5")]))
        func pod(_ name: String, node: String, app: String = "ingressgateway", ready: Bool = true) -> String {
            #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"\#(name)","namespace":"istio-system","labels":{"istio":"\#(app)"}},"#
                + #""spec":{"nodeName":"\#(node)","containers":[{"name":"istio-proxy","image":"proxyv2"}]},"#
                + #""status":{"phase":"Running","conditions":[{"type":"Ready","status":"\#(ready ? "True" : "False")"}]}}"#
        }
        for (name, node) in [("gw-a", "node-a"), ("gw-b", "node-b"), ("gw-c", "node-c"), ("gw-d", "node-d")] {
            try await kube.create(.pods, pod(name, node: node))
        }
        try await kube.create(.pods, pod("istiod-e", node: "node-e", app: "istiod"))  // not selected

        let harness = try await kube.metadataService()
        defer { Task { await harness.stop() } }
        #expect(try await harness.servedGateways() == ["10.0.0.2:31443", "198.51.100.1:31443"])

        _ = try await kube.client.patchStatus(.pods, namespace: "istio-system", name: "gw-b",
                                              .merge(try JSON(parsing: #"{"status":{"conditions":[{"type":"Ready","status":"False"}]}}"#)))
        await eventually("node-b is dropped", deadline: .seconds(60)) {
            (try? await harness.servedGateways()) == ["198.51.100.1:31443"]
        }
        // A new gateway pod on node-e adds that node.
        try await kube.create(.pods, pod("gw-e", node: "node-e"))
        await eventually("node-e is added", deadline: .seconds(60)) {
            (try? await harness.servedGateways()) == ["198.51.100.1:31443", "198.51.100.5:31443"]
        }
        // Turned into a LoadBalancer: its ingress is published, and the pod and node watches end.
        let watchesBefore = kube.server.openWatchCount
        _ = try await kube.client.patch(.services, namespace: "istio-system", name: "istio-ingressgateway",
                                        .merge(try JSON(parsing: #"{"spec":{"type":"LoadBalancer"}}"#)))
        _ = try await kube.client.patchStatus(.services, namespace: "istio-system", name: "istio-ingressgateway",
                                              .merge(try JSON(parsing: #"{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.40"}]}}}"#)))
        await eventually("the LoadBalancer ingress is served", deadline: .seconds(60)) {
            (try? await harness.servedGateways()) == ["203.0.113.40:15443"]
        }
        await eventually("the pod and node watches are closed", deadline: .seconds(60)) {
            kube.server.openWatchCount <= watchesBefore - 2
        }
    }

    @Test("a rotated root CA in the ConfigMap is published in public.json; a broken one keeps the last good")
    func rootCARotation() async throws {
        let kube = try await KubeFixture.start()
        defer { Task { await kube.stop() } }
        let first = try ServingCertificates.generate(commonName: "istio-root-1").caCertificatePEM
        let second = try ServingCertificates.generate(commonName: "istio-root-2").caCertificatePEM
        try await kube.create(.configMaps, kube.rootCAConfigMap(first))
        // Gateways from flags: only the ConfigMap is read from the API.
        let harness = try await kube.metadataService { $0.ingressGateways = [IngressGateway(address: "203.0.113.10", port: 15443)] }
        defer { Task { await harness.stop() } }
        #expect(harness.service.kubernetes?.ingressGatewayService == nil)
        let before = try await harness.curl("/metadata/public/public.json")
        #expect(before.json?["rootCA"]?.stringValue == first)

        _ = try await kube.client.update(.configMaps, namespace: "istio-system", object: try JSON(parsing: kube.rootCAConfigMap(second)))
        await eventually("the rotated root CA is served", deadline: .seconds(60)) {
            (try? await harness.servedRootCA()) == second
        }
        let after = try await harness.curl("/metadata/public/public.json")
        #expect(after.headers.contains("etag") && before.headers != after.headers)

        _ = try await kube.client.update(.configMaps, namespace: "istio-system", object: try JSON(parsing: kube.rootCAConfigMap("not a PEM")))
        await eventually("the broken ConfigMap is reported", deadline: .seconds(60)) {
            harness.log.lines.contains { $0.contains("configmap istio-system/istio-ca-root-cert key root-cert.pem") }
        }
        #expect(try await harness.servedRootCA() == second)
        // Polled every 100 ms, still broken: said once, not on every poll.
        try await Task.sleep(for: .milliseconds(600))
        #expect(harness.log.lines.filter { $0.contains("configmap istio-system/istio-ca-root-cert key root-cert.pem") }.count == 1,
                "\(harness.log.lines)")
    }

    @Test("start-up fails naming the setting: a missing ConfigMap, an unreachable API, a malformed reference")
    func startFailures() async throws {
        let kube = try await KubeFixture.start()
        defer { Task { await kube.stop() } }
        do {
            let harness = try await kube.metadataService { $0.ingressGatewayService = nil }
            await harness.stop()
            Issue.record("started without the root CA ConfigMap")
        } catch let error as MetadataSourceError {
            #expect(error == MetadataSourceError(field: "rootCAConfigMap", problem: "configmap istio-system/istio-ca-root-cert not found"))
        }
        do {
            let harness = try await kube.metadataService { $0.rootCAConfigMap = "istio-ca-root-cert" }
            await harness.stop()
            Issue.record("started with a malformed reference")
        } catch let error as MetadataSourceError {
            #expect(error.field == "rootCAConfigMap")
        }
        // An API server that is gone: the first lists never succeed.
        let port = kube.server.port
        await kube.stopServer()
        do {
            let harness = try await MetadataHarness.start { configuration in
                configuration.flags.ingressGateways = nil
                configuration.flags.kubeconfig = kube.kubeconfig
                configuration.flags.ingressGatewayService = "istio-system/istio-ingressgateway"
                configuration.kubernetesSyncTimeout = .seconds(2)
            }
            await harness.stop()
            Issue.record("started without an API server")
        } catch let error as MetadataSourceError {
            #expect(error.field == "kubeconfig")
            #expect(error.problem.hasPrefix("cannot list from the Kubernetes API within 2s: service istio-system/istio-ingressgateway:"),
                    "\(error.problem) (port \(port))")
        }
        do {
            let harness = try await MetadataHarness.start { configuration in
                configuration.flags.ingressGateways = nil
                configuration.flags.kubeconfig = "/nonexistent/kubeconfig"
                configuration.flags.ingressGatewayService = "istio-system/istio-ingressgateway"
            }
            await harness.stop()
            Issue.record("started with a missing kubeconfig")
        } catch let error as MetadataSourceError {
            #expect(error.field == "kubeconfig" && error.problem.contains("/nonexistent/kubeconfig"))
        }
    }
}

final class StopOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    /// True the first time only.
    func first() -> Bool { lock.withLock { defer { done = true }; return !done } }
}
