import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import Testing

/// Runs the real kubectl (HTTP/2 over TLS, its default) against a fresh server.
struct Kubectl {
    static let path = "/usr/bin/kubectl"
    let server: FakeAPIServer
    let directory: URL

    static func start(_ configure: (inout FakeAPIServer.Configuration) -> Void = { _ in }) async throws -> Kubectl {
        var config = FakeAPIServer.Configuration(tokens: ["kubectl-test-token": "admin"])
        config.threads = 2
        configure(&config)
        let server = try await FakeAPIServer.start(config)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-kubectl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ca = directory.appendingPathComponent("ca.crt")
        try (server.caCertificatePEM ?? "").write(to: ca, atomically: true, encoding: .utf8)
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster: {server: "https://127.0.0.1:\(server.port)", certificate-authority: "\(ca.path)"}
            users:
            - name: fake
              user: {token: kubectl-test-token}
            contexts:
            - name: fake
              context: {cluster: fake, user: fake}
            current-context: fake

            """
        try kubeconfig.write(to: directory.appendingPathComponent("kubeconfig"), atomically: true, encoding: .utf8)
        return Kubectl(server: server, directory: directory)
    }

    func stop() async throws {
        try await server.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    func file(_ name: String, _ content: String) throws -> String {
        let url = directory.appendingPathComponent(name)
        try content.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    struct Result: CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String
        var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
    }

    func process(_ args: [String], stdout: URL? = nil) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.path)
        p.arguments = ["--kubeconfig", directory.appendingPathComponent("kubeconfig").path,
                       "--cache-dir", directory.appendingPathComponent("cache").path] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        return (p, out, err)
    }

    @discardableResult
    func run(_ args: String...) async throws -> Result {
        let (p, out, err) = try process(args)
        try p.run()
        // Read before waiting so a large output cannot block the child.
        async let stdout = Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
        async let stderr = Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
        let (o, e) = await (stdout, stderr)
        await Task.detached { p.waitUntilExit() }.value
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    func ok(_ args: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let (p, out, err) = try process(args)
        try p.run()
        async let stdout = Task.detached { out.fileHandleForReading.readDataToEndOfFile() }.value
        async let stderr = Task.detached { err.fileHandleForReading.readDataToEndOfFile() }.value
        let (o, e) = await (stdout, stderr)
        await Task.detached { p.waitUntilExit() }.value
        let result = Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
        #expect(result.status == 0, "kubectl \(args.joined(separator: " ")): \(result)", sourceLocation: sourceLocation)
        return result.stdout
    }
}

/// Polls `condition` until it holds; fails the test after a generous deadline (never a timing assertion).
func eventually(_ what: String, deadline: Duration = .seconds(60), sourceLocation: SourceLocation = #_sourceLocation,
                _ condition: () async throws -> Bool) async rethrows {
    let clock = ContinuousClock()
    let end = clock.now + deadline
    while clock.now < end {
        if try await condition() { return }
        try? await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("never happened: \(what)", sourceLocation: sourceLocation)
}

/// A namespace manifest (`create -f` sends JSON; `kubectl create namespace`
/// sends protobuf, see ProtobufBodyTests).
let namespaceYAML = """
    apiVersion: v1
    kind: Namespace
    metadata: {name: demo}

    """

let serviceYAML = """
    apiVersion: v1
    kind: Service
    metadata:
      name: web
      namespace: demo
      labels: {app: web}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: 8080}]

    """

@Suite("kubectl against the fake API server", .serialized)
struct KubectlTests {
    @Test("kubectl is installed (scripts/test installs it)")
    func kubectlPresent() {
        #expect(FileManager.default.isExecutableFile(atPath: Kubectl.path))
    }

    @Test("create -f, get -o yaml, apply, label, patch --type merge, delete")
    func lifecycle() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("ns.yaml", namespaceYAML))
        let manifest = try k.file("svc.yaml", serviceYAML)
        #expect(try await k.ok("create", "-f", manifest).contains("service/web created"))
        let yaml = try await k.ok("get", "service", "web", "-n", "demo", "-o", "yaml")
        #expect(yaml.contains("name: web") && yaml.contains("resourceVersion:") && yaml.contains("uid:"))
        // apply of an object created without apply: a strategic merge patch.
        #expect(try await k.ok("apply", "-f", try k.file("svc2.yaml", serviceYAML.replacingOccurrences(of: "{app: web}\nspec", with: "{app: web, tier: front}\nspec"))).contains("service/web configured"))
        #expect(try k.server.get(resource: "services", namespace: "demo", name: "web").value(at: ["metadata", "labels", "tier"]) == .string("front"))
        // apply of a new object: a create.
        #expect(try await k.ok("apply", "-f", try k.file("svc3.yaml", serviceYAML.replacingOccurrences(of: "name: web", with: "name: api"))).contains("service/api created"))
        #expect(try await k.ok("label", "service", "web", "-n", "demo", "step=2").contains("service/web labeled"))
        #expect(try await k.ok("patch", "service", "web", "-n", "demo", "--type", "merge", "-p", #"{"spec":{"ports":[{"name":"https","port":443}]}}"#).contains("patched"))
        let web = try k.server.get(resource: "services", namespace: "demo", name: "web")
        #expect(web.value(at: ["metadata", "labels", "step"]) == .string("2"))
        #expect(web.value(at: ["spec", "ports"])?.arrayValue?.count == 1)
        let table = try await k.ok("get", "services", "-n", "demo")
        #expect(table.contains("NAME") && table.contains("web") && table.contains("api"))
        #expect(try await k.ok("delete", "service", "web", "-n", "demo").contains(#"service "web" deleted"#))
        #expect(throws: Status.self) { try k.server.get(resource: "services", namespace: "demo", name: "web") }
        let missing = try await k.run("get", "service", "web", "-n", "demo")
        #expect(missing.status != 0 && missing.stderr.contains(#"services "web" not found"#))
        // kubectl talks HTTP/2 over TLS by default.
        #expect(k.server.recentRequests.contains { $0.http2 })
        #expect(!k.server.recentRequests.contains { $0.header("authorization") == "Bearer kubectl-test-token" })
    }

    @Test("get --raw /api returns the legacy discovery document")
    func rawAPI() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        let body = try await k.ok("get", "--raw", "/api")
        #expect(body.hasPrefix(#"{"kind":"APIVersions","versions":["v1"]"#))
        let version = try await k.ok("version", "-o", "json")
        #expect(version.contains(#""minor": "32""#))
    }

    @Test("get -w sees an update made after it started")
    func watch() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        _ = try await k.ok("create", "-f", try k.file("ns.yaml", namespaceYAML))
        _ = try await k.ok("create", "-f", try k.file("svc.yaml", serviceYAML))
        let outFile = k.directory.appendingPathComponent("watch.out")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let (p, _, _) = try k.process(["get", "service", "web", "-n", "demo", "-w", "-o", "jsonpath={.metadata.labels.step}{\"\\n\"}"])
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        try p.run()
        defer { p.terminate() }
        await eventually("kubectl opened its watch") { k.server.openWatchCount >= 1 }
        try k.server.mergePatch(resource: "services", namespace: "demo", name: "web", patch: .object([("metadata", .object([("labels", .object([("step", .string("seen-by-watch"))]))]))]))
        await eventually("kubectl printed the update") {
            (try? String(contentsOf: outFile, encoding: .utf8))?.contains("seen-by-watch") ?? false
        }
    }

    @Test("a CRD (IstioMulticluster, cluster-scoped, status subresource) is served once created")
    func crd() async throws {
        let k = try await Kubectl.start()
        defer { Task { try? await k.stop() } }
        let crd = try k.file("crd.yaml", """
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata: {name: istiomulticlusters.deckhouse.io}
            spec:
              group: deckhouse.io
              scope: Cluster
              names: {plural: istiomulticlusters, singular: istiomulticluster, kind: IstioMulticluster, listKind: IstioMulticlusterList}
              versions:
              - name: v1alpha1
                served: true
                storage: true
                subresources: {status: {}}
                schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}

            """)
        _ = try await k.ok("create", "-f", crd)
        let cr = try k.file("cr.yaml", """
            apiVersion: deckhouse.io/v1alpha1
            kind: IstioMulticluster
            metadata: {name: remote}
            spec: {metadataEndpoint: "https://istio.remote.example.com/metadata/"}

            """)
        #expect(try await k.ok("create", "-f", cr).contains("istiomulticluster.deckhouse.io/remote created"))
        #expect(try await k.ok("get", "istiomulticlusters", "-o", "name") == "istiomulticluster.deckhouse.io/remote\n")
        _ = try await k.ok("patch", "istiomulticluster", "remote", "--subresource", "status", "--type", "merge", "-p", #"{"status":{"metadataCache":{"ready":true}}}"#)
        let json = try JSON(parsing: try await k.ok("get", "istiomulticluster", "remote", "-o", "json"))
        #expect(json.value(at: ["status", "metadataCache", "ready"]) == .bool(true))
        #expect(json.value(at: ["metadata", "generation"])?.intValue == 1)
        #expect(try await k.ok("apply", "--server-side", "-f", cr).contains("serverside-applied"))
    }

    @Test("a watch from a resourceVersion the history no longer holds gets the 410 Expired event")
    func expired() async throws {
        let k = try await Kubectl.start { $0.historyCapacity = 5 }
        defer { Task { try? await k.stop() } }
        for i in 0..<10 {
            try k.server.create(resource: "configmaps", object: .object([("metadata", .object([("name", .string("cm\(i)")), ("namespace", .string("default"))]))]))
        }
        let out = try await k.ok("get", "--raw", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1")
        #expect(out.contains(#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 ("#))
        #expect(out.contains(#""reason":"Expired","code":410"#))
    }
}
