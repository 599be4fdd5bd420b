import Foundation
import IsthmusHTTP
import IsthmusKubeTypes
@testable import IsthmusMetadata
import IsthmusTestSupport
import InMemoryLogging
import IsthmusTrust
import Logging
import Testing

/// A metadata service on loopback over real TLS, its files in a temporary
/// directory, and curl as the client.
struct MetadataHarness {
    let service: MetadataService
    let directory: URL
    let peerKey: SigningKeyPair
    let rootCA: String
    /// Every line the service logged.
    let log: LogLines

    var keyFile: URL { directory.appendingPathComponent("key.pem") }
    var rootCAFile: URL { directory.appendingPathComponent("root-cert.pem") }
    var peersFile: URL { directory.appendingPathComponent("peers.json") }
    var configFile: URL { directory.appendingPathComponent("metadata.yaml") }
    var caFile: URL { directory.appendingPathComponent("serving-ca.crt") }

    /// `configure` adjusts the configuration last (e.g. to read the Kubernetes API).
    static func start(plainHTTP: Bool = false, useConfigFile: Bool = false,
                      configure: (inout MetadataServiceConfiguration) -> Void = { _ in }) async throws -> MetadataHarness {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-metadata-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let peerKey = SigningKeyPair()
        let rootCA = try ServingCertificates.generate(commonName: "istio-root").caCertificatePEM
        try MetadataFixtures.privateKeyPEM.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        try rootCA.write(to: directory.appendingPathComponent("root-cert.pem"), atomically: true, encoding: .utf8)
        let peers = try TrustedPeers([TrustedPeer(clusterUUID: MetadataFixtures.peerUUID, keys: [peerKey.publicKey], rootCA: rootCA)])
        try peers.encodedJSONString().write(to: directory.appendingPathComponent("peers.json"), atomically: true, encoding: .utf8)

        var flags = MetadataSettings()
        flags.keyFile = directory.appendingPathComponent("key.pem").path
        flags.rootCAFile = directory.appendingPathComponent("root-cert.pem").path
        flags.peersFile = directory.appendingPathComponent("peers.json").path
        flags.listen = "127.0.0.1:0"
        flags.plainHTTP = plainHTTP
        var configFile: String?
        let documentSettings = """
            clusterUUID: \(MetadataFixtures.clusterUUID)
            apiHost: istio-api.k8s-a.example.com
            networkName: network-a
            ingressGateways: ["203.0.113.10:15443"]
            podSubnetCIDR: 10.111.0.0/16
            serviceSubnetCIDR: 10.222.0.0/16

            """
        if useConfigFile {
            configFile = directory.appendingPathComponent("metadata.yaml").path
            try documentSettings.write(toFile: configFile ?? "", atomically: true, encoding: .utf8)
        } else {
            let fromYAML = try MetadataSettings(yaml: documentSettings, file: "inline")
            flags = flags.merged(over: fromYAML)
        }
        var configuration = MetadataServiceConfiguration(flags: flags, configFile: configFile)
        configuration.reloadInterval = .milliseconds(100)
        configure(&configuration)
        let log = LogLines()
        let service = try await MetadataService.start(configuration, logger: log.logger)
        if let ca = service.server.certificates?.caCertificatePEM {
            try ca.write(to: directory.appendingPathComponent("serving-ca.crt"), atomically: true, encoding: .utf8)
        }
        return MetadataHarness(service: service, directory: directory, peerKey: peerKey, rootCA: rootCA, log: log)
    }

    func stop() async {
        try? await service.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    func token(scope: TokenScope, key: SigningKeyPair? = nil, subject: String = MetadataFixtures.peerUUID,
               lifetime: Int64 = 600, age: Int64 = 0) -> String {
        let now = Int64(Date().timeIntervalSince1970) - age
        return mint(TokenClaims(subject: subject, audience: MetadataFixtures.clusterUUID, scope: scope, now: now, lifetime: lifetime),
                    with: key ?? peerKey)
    }

    var baseURL: String {
        (service.server.certificates == nil ? "http" : "https") + "://127.0.0.1:\(service.port)"
    }

    struct Reply {
        var code: Int
        var body: String
        var headers: String
        var json: JSON? { try? JSON(parsing: body) }
    }

    /// One request with curl; `token` nil sends no Authorization.
    func curl(_ path: String, token: String? = nil, http1: Bool = false, method: String = "GET") async throws -> Reply {
        let headersFile = directory.appendingPathComponent("headers-\(UUID().uuidString)")
        var args = ["-sS", "-o", "-", "-w", "\n%{http_code}", "-D", headersFile.path]
        if service.server.certificates != nil {
            args += ["--cacert", caFile.path, http1 ? "--http1.1" : "--http2"]
        }
        args += method == "HEAD" ? ["--head"] : ["-X", method]
        if let token {
            // From a file, so the token never shows in a process listing.
            let file = directory.appendingPathComponent("auth-\(UUID().uuidString).header")
            try "Authorization: Bearer \(token)\n".write(to: file, atomically: true, encoding: .utf8)
            args += ["-H", "@" + file.path]
        }
        args.append(baseURL + path)
        let output = try await ChildProcess.run(Executables.curl, args)
        var lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? -1
        let headers = (try? String(contentsOf: headersFile, encoding: .utf8)) ?? ""
        return Reply(code: code, body: lines.joined(separator: "\n"), headers: headers.lowercased())
    }
}

@Suite("isthmus metadata over real TLS, with curl", .serialized)
struct MetadataServiceTests {
    @Test("auth matrix: public open; private 200 only for a trusted peer's private-multicluster token", arguments: [false, true])
    func authMatrix(http1: Bool) async throws {
        let harness = try await MetadataHarness.start()
        defer { Task { await harness.stop() } }
        let documents = harness.service.server.snapshot.documents

        let publicReply = try await harness.curl("/metadata/public/public.json", http1: http1)
        #expect(publicReply.code == 200)
        #expect(publicReply.json?["rootCA"] == .string(harness.rootCA))
        #expect(publicReply.json?["clusterUUID"] == .string(MetadataFixtures.clusterUUID))
        #expect(publicReply.headers.contains("content-type: application/json"))

        let allowed = try await harness.curl("/metadata/private/multicluster.json", token: harness.token(scope: .privateMulticluster),
                                             http1: http1)
        #expect(allowed.code == 200)
        #expect(Array(allowed.body.utf8) == documents.privateMetadata.body)
        #expect(allowed.json?["apiHost"] == .string("istio-api.k8s-a.example.com"))
        #expect(allowed.json?["ingressGateways"] == .array([.object([("address", .string("203.0.113.10")), ("port", .int(15443))])]))
        #expect(allowed.headers.contains("cache-control: no-store"))
        #expect(allowed.headers.contains("etag: \(documents.privateMetadata.etag)"))

        var presented: [String] = []
        let cases: [(String, String?, Int)] = [
            ("no token", nil, 401),
            ("api scope from a trusted peer", harness.token(scope: .api), 403),
            ("unknown peer", harness.token(scope: .privateMulticluster, key: SigningKeyPair(),
                                           subject: "c0ffee00-0000-4000-8000-000000000000"), 401),
            ("expired", harness.token(scope: .privateMulticluster, lifetime: 60, age: 3600), 401),
            ("not a JWT", "not-a-jwt", 401),
        ]
        for (what, token, code) in cases {
            if let token { presented.append(token) }
            let reply = try await harness.curl("/metadata/private/multicluster.json", token: token, http1: http1)
            #expect(reply.code == code, "\(what)")
            #expect(reply.json?["kind"] == .string("Status"), "\(what): \(reply.body)")
            #expect(reply.json?["code"] == .int(code), "\(what)")
            #expect(reply.json?["reason"] == .string(code == 401 ? "Unauthorized" : "Forbidden"), "\(what)")
            #expect(!reply.body.contains("10.111.0.0"), "\(what): no private data in a refusal")
        }

        let post = try await harness.curl("/metadata/public/public.json", http1: http1, method: "POST")
        #expect(post.code == 405)
        #expect(post.json?["reason"] == .string("MethodNotAllowed"))
        let missing = try await harness.curl("/metadata/private/other.json", http1: http1)
        #expect(missing.code == 404)
        #expect(missing.json?["reason"] == .string("NotFound"))
        let head = try await harness.curl("/metadata/public/public.json", http1: http1, method: "HEAD")
        #expect(head.code == 200)
        #expect(head.headers.contains("content-length: \(documents.publicMetadata.body.count)"))
        #expect((try await harness.curl("/healthz", http1: http1)).body == "ok")
        #expect((try await harness.curl("/readyz", http1: http1)).code == 200)

        // The log says who read and why others were refused, and never holds a token.
        let lines = harness.log.lines
        #expect(lines.contains { $0.contains("/metadata/private/multicluster.json 200: read by peer \(MetadataFixtures.peerUUID)") })
        #expect(lines.contains { $0.contains("403") && $0.contains(#"has scope "api""#) })
        #expect(lines.contains { $0.contains("401: no Authorization header") })
        for token in presented {
            #expect(!lines.contains { $0.contains(token.prefix(24)) })
        }
    }

    @Test("the admin listener serves /metrics (requests by document and code, reloads) and the probes; the API port serves no /metrics")
    func adminMetrics() async throws {
        let harness = try await MetadataHarness.start { $0.admin = (host: "127.0.0.1", port: 0) }
        defer { Task { await harness.stop() } }
        let adminPort = try #require(harness.service.admin?.port)
        _ = try await harness.curl("/metadata/public/public.json")
        _ = try await harness.curl("/metadata/public/public.json")
        _ = try await harness.curl("/metadata/private/multicluster.json", token: harness.token(scope: .privateMulticluster))
        _ = try await harness.curl("/metadata/private/multicluster.json")
        _ = try await harness.curl("/x?\(String(repeating: "a", count: 40))")
        #expect(try await harness.curl("/metrics").code == 404, "metrics on the port peers reach")

        let scrape = try await ChildProcess.run(Executables.curl, ["-sS", "http://127.0.0.1:\(adminPort)/metrics"]).stdout
        for line in [#"isthmus_metadata_requests_total{code="200",document="public"} 2"#,
                     #"isthmus_metadata_requests_total{code="200",document="private"} 1"#,
                     #"isthmus_metadata_requests_total{code="401",document="private"} 1"#,
                     #"isthmus_metadata_requests_total{code="404",document="other"} 2"#,
                     #"isthmus_metadata_reloads_total{result="failure"} 0"#,
                     "# TYPE isthmus_metadata_requests_total counter"] {
            #expect(scrape.contains(line + "\n"), "\(line)\n\(scrape)")
        }
        #expect(scrape.contains("# HELP isthmus_metadata_requests_total "))
        #expect(!scrape.contains("aaaa"), "a client's path is never a label value")
        let probe = try await ChildProcess.run(Executables.curl, ["-sS", "http://127.0.0.1:\(adminPort)/readyz"]).stdout
        #expect(probe == "ok")
    }

    @Test("a changed root CA, key or trusted peers file is served without a restart; a broken one keeps the last good")
    func fileChanges() async throws {
        let harness = try await MetadataHarness.start()
        defer { Task { await harness.stop() } }

        let newRootCA = try ServingCertificates.generate(commonName: "istio-root-2").caCertificatePEM
        try newRootCA.write(to: harness.rootCAFile, atomically: true, encoding: .utf8)
        try await eventually("the public document carries the new root CA", deadline: .seconds(30)) {
            try await harness.curl("/metadata/public/public.json").json?["rootCA"] == .string(newRootCA)
        }

        let newKey = SigningKeyPair()
        try newKey.pemRepresentation.write(to: harness.keyFile, atomically: true, encoding: .utf8)
        try await eventually("the public document carries the new public key", deadline: .seconds(30)) {
            try await harness.curl("/metadata/public/public.json").json?["authnKeyPub"] == .string(newKey.publicKey.pemRepresentation)
        }

        // A second peer joins: its token is accepted once the file says so.
        let secondUUID = "5e7c1b2a-0f3d-4c6e-9a8b-7d6c5b4a3f21"
        let secondKey = SigningKeyPair()
        let secondToken = harness.token(scope: .privateMulticluster, key: secondKey, subject: secondUUID)
        #expect(try await harness.curl("/metadata/private/multicluster.json", token: secondToken).code == 401)
        let peers = try TrustedPeers([
            TrustedPeer(clusterUUID: MetadataFixtures.peerUUID, keys: [harness.peerKey.publicKey], rootCA: harness.rootCA),
            TrustedPeer(clusterUUID: secondUUID, keys: [secondKey.publicKey], rootCA: harness.rootCA),
        ])
        try peers.encodedJSONString().write(to: harness.peersFile, atomically: true, encoding: .utf8)
        try await eventually("the new peer's token is accepted", deadline: .seconds(30)) {
            try await harness.curl("/metadata/private/multicluster.json", token: secondToken).code == 200
        }

        // A truncated peers file is refused; both peers keep working.
        try "{\"\(secondUUID)\": {".write(to: harness.peersFile, atomically: true, encoding: .utf8)
        let outcome = await harness.service.reloadNow()
        guard case .failed(let reason) = outcome else {
            Issue.record("a broken peers file was accepted: \(outcome)")
            return
        }
        #expect(reason.contains("peers"), "\(reason)")
        #expect(try await harness.curl("/metadata/private/multicluster.json", token: secondToken).code == 200)
        #expect(try await harness.curl("/metadata/private/multicluster.json", token: harness.token(scope: .privateMulticluster)).code == 200)
    }

    @Test("a config file change (apiHost, gateways) rebuilds the private document")
    func configFileChange() async throws {
        let harness = try await MetadataHarness.start(useConfigFile: true)
        defer { Task { await harness.stop() } }
        let token = harness.token(scope: .privateMulticluster)
        let before = try await harness.curl("/metadata/private/multicluster.json", token: token)
        #expect(before.json?["apiHost"] == .string("istio-api.k8s-a.example.com"))
        let etagBefore = harness.service.server.snapshot.documents.privateMetadata.etag

        try """
            clusterUUID: \(MetadataFixtures.clusterUUID)
            apiHost: istio-api.k8s-a.example.net:8443
            networkName: network-a
            ingressGateways: ["203.0.113.10:15443", "203.0.113.11:15443"]

            """.write(to: harness.configFile, atomically: true, encoding: .utf8)
        try await eventually("the private document has the new apiHost", deadline: .seconds(30)) {
            try await harness.curl("/metadata/private/multicluster.json", token: token).json?["apiHost"]
                == .string("istio-api.k8s-a.example.net:8443")
        }
        let after = try await harness.curl("/metadata/private/multicluster.json", token: token)
        #expect(after.json?["ingressGateways"]?.arrayValue?.count == 2)
        #expect(after.json?["podSubnetCIDR"] == nil, "removed from the file, so no longer published")
        #expect(!after.headers.contains(etagBefore.lowercased()))
    }

    @Test("--plain-http serves the same documents over HTTP/1.1 without TLS")
    func plainHTTP() async throws {
        let harness = try await MetadataHarness.start(plainHTTP: true)
        defer { Task { await harness.stop() } }
        #expect(harness.baseURL.hasPrefix("http://"))
        let reply = try await harness.curl("/metadata/public/public.json")
        #expect(reply.code == 200)
        #expect(reply.json?["clusterUUID"] == .string(MetadataFixtures.clusterUUID))
        #expect(try await harness.curl("/metadata/private/multicluster.json", token: harness.token(scope: .api)).code == 403)
    }

    @Test("gateways come from the gateway source when the settings list none, and follow it")
    func gatewaySource() async throws {
        // Discovery instead of a fixed list, as a Kubernetes-backed source would do it.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-metadata-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try MetadataFixtures.privateKeyPEM.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        try MetadataFixtures.rootCA.write(to: directory.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
        try "{}".write(to: directory.appendingPathComponent("peers.json"), atomically: true, encoding: .utf8)
        var flags = MetadataSettings()
        flags.clusterUUID = MetadataFixtures.clusterUUID
        flags.keyFile = directory.appendingPathComponent("key.pem").path
        flags.rootCAFile = directory.appendingPathComponent("ca.pem").path
        flags.peersFile = directory.appendingPathComponent("peers.json").path
        flags.apiHost = "api.example.com"
        flags.networkName = "network-a"
        flags.listen = "127.0.0.1:0"
        let ingress = GatewayIngressBox()
        var configuration = MetadataServiceConfiguration(flags: flags)
        configuration.gatewaySource = DiscoveredGateways {
            GatewayObjects(service: GatewayObjectFixtures.service(type: "LoadBalancer", ingress: ingress.value))
        }
        configuration.reloadInterval = .seconds(3600)  // only reloadNow() below
        let service = try await MetadataService.start(configuration)
        defer { Task { try? await service.shutdown() } }
        #expect(service.server.snapshot.documents.sources.ingressGateways == [IngressGateway(address: "203.0.113.20", port: 15443)])
        ingress.set(#"[{"ip":"203.0.113.21"}]"#)
        #expect(await service.reloadNow() == .rebuilt)
        #expect(service.server.snapshot.documents.sources.ingressGateways == [IngressGateway(address: "203.0.113.21", port: 15443)])
        ingress.set("[]")  // the LoadBalancer lost its address: keep the last good list
        #expect(await service.reloadNow() == .failed("ingress gateways: LoadBalancer service d8-istio/ingressgateway has no ingress address yet"))
        #expect(service.server.snapshot.documents.sources.ingressGateways == [IngressGateway(address: "203.0.113.21", port: 15443)])
    }
}

/// What the service logged, through swift-log's in-memory handler.
struct LogLines: Sendable {
    let handler = InMemoryLogHandler()
    var logger: Logger { Logger(label: "isthmus.metadata", factory: { [handler] _ in handler }) }
    /// Each event as `level message metadata`, so a check for a leaked token sees all of it.
    var lines: [String] { handler.entries.map { "\($0.level) \($0.message) \($0.metadata)" } }
    /// Just the messages, for checks of what an event starts with.
    var messages: [String] { handler.entries.map { "\($0.message)" } }
}

/// The LoadBalancer status a test's fake API returns, changed between reloads.
final class GatewayIngressBox: @unchecked Sendable {
    private let lock = NSLock()
    private var text = #"[{"ip":"203.0.113.20"}]"#
    var value: String { lock.withLock { text } }
    func set(_ value: String) { lock.withLock { text = value } }
}
