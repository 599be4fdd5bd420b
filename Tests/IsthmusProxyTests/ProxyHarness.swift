import Foundation
#if canImport(Glibc)
import Glibc
#endif
import IsthmusAdmission
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeTypes
import IsthmusPolicy
import IsthmusProxy
import IsthmusTestSupport
import IsthmusTrust
import Testing

let localClusterUUID = "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"
let testPeerUUID = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"
/// The proxy's ServiceAccount token: the only one the upstream accepts.
let proxySAToken = "proxy-sa-token"

let repositoryPolicies: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/IsthmusProxyTests/ProxyHarness.swift
    return parts.joined(separator: "/") + "/policies"
}()

/// Real sockets, real TLS: kubectl / curl → proxy → FakeAPIServer.
struct ProxyHarness {
    let upstream: FakeAPIServer
    let proxy: ProxyServer
    let directory: URL
    let peerKey: SigningKeyPair
    /// A valid JWT for the test peer (scope api, audience the local cluster).
    let peerToken: String
    let tokenFile: URL

    static func start(
        upstreamTokens: [String: String] = [proxySAToken: "system:serviceaccount:isthmus:proxy"],
        tokenFileContent: String = proxySAToken + "\n",
        upstreamURL: ((FakeAPIServer) -> String)? = nil,
        configure: (inout ProxyConfiguration) -> Void = { _ in },
        configureUpstream: (inout FakeAPIServer.Configuration) -> Void = { _ in }
    ) async throws -> ProxyHarness {
        var upstreamConfiguration = FakeAPIServer.Configuration(tokens: upstreamTokens)
        upstreamConfiguration.threads = 1
        configureUpstream(&upstreamConfiguration)
        let upstream = try await FakeAPIServer.start(upstreamConfiguration)
        do {
            try seed(upstream)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-proxy-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let tokenFile = directory.appendingPathComponent("token")
            try tokenFileContent.write(to: tokenFile, atomically: true, encoding: .utf8)
            let peerKey = SigningKeyPair()
            let peers = try TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [peerKey.publicKey],
                                                      rootCA: upstream.caCertificatePEM ?? "")])
            let peersFile = directory.appendingPathComponent("peers.json")
            try peers.encodedJSONString().write(to: peersFile, atomically: true, encoding: .utf8)

            var upstreamClient = UpstreamConfiguration(url: upstreamURL?(upstream) ?? upstream.url,
                                                       caCertificatePEM: upstream.caCertificatePEM ?? "",
                                                       tokenFile: tokenFile.path)
            upstreamClient.tokenRefreshInterval = .milliseconds(100)
            var configuration = ProxyConfiguration(upstream: upstreamClient, peersFile: peersFile.path,
                                                   policyDirectory: repositoryPolicies, localClusterUUID: localClusterUUID)
            configuration.host = "127.0.0.1"
            configuration.port = 0
            configuration.threads = 2
            configure(&configuration)
            let proxy = try await ProxyServer.start(configuration)
            try proxy.certificates.caCertificatePEM.write(to: directory.appendingPathComponent("proxy-ca.crt"),
                                                          atomically: true, encoding: .utf8)
            let now = Int64(Date().timeIntervalSince1970)
            let token = mint(TokenClaims(subject: testPeerUUID, audience: localClusterUUID, scope: .api,
                                         notBefore: now - 10, expiresAt: now + 3600), with: peerKey)
            let harness = ProxyHarness(upstream: upstream, proxy: proxy, directory: directory, peerKey: peerKey,
                                       peerToken: token, tokenFile: tokenFile)
            try harness.writeKubeconfig(token: token)
            return harness
        } catch {
            try? await upstream.shutdown()
            throw error
        }
    }

    static func seed(_ upstream: FakeAPIServer) throws {
        try upstream.create(resource: "namespaces", object: .object([("metadata", .object([("name", .string("demo"))]))]))
        for name in ["web", "api", "db"] {
            try upstream.create(resource: "services", object: .object([
                ("metadata", .object([("name", .string(name)), ("namespace", .string("demo")),
                                      ("labels", .object([("app", .string(name))]))])),
                ("spec", .object([("ports", .array([.object([("port", .int(80))])]))])),
            ]))
        }
        try upstream.create(resource: "configmaps", object: .object([
            ("metadata", .object([("name", .string("settings")), ("namespace", .string("demo"))])),
        ]))
    }

    /// Trusts a second peer beside the test peer and returns its valid token.
    func trustSecondPeer(uuid: String = "3c1f8a5e-9b2d-4f6a-8e7c-1d2b3a4c5e6f") throws -> String {
        let rootCA = upstream.caCertificatePEM ?? ""
        let otherKey = SigningKeyPair()
        let now = Int64(Date().timeIntervalSince1970)
        let token = mint(TokenClaims(subject: uuid, audience: localClusterUUID, scope: .api,
                                     notBefore: now - 10, expiresAt: now + 3600), with: otherKey)
        proxy.replaceAdmission(AdmissionPipeline(
            verifier: TokenVerifier(localClusterUUID: localClusterUUID, peers: try TrustedPeers([
                TrustedPeer(clusterUUID: testPeerUUID, keys: [peerKey.publicKey], rootCA: rootCA),
                TrustedPeer(clusterUUID: uuid, keys: [otherKey.publicKey], rootCA: rootCA)])),
            policy: try PolicySet.load(directory: repositoryPolicies), cache: VerifiedTokenCache()))
        return token
    }

    func stop() async {
        try? await proxy.shutdown()
        try? await upstream.shutdown()
        try? FileManager.default.removeItem(at: directory)
    }

    var proxyURL: String { "https://127.0.0.1:\(proxy.port)" }
    var proxyCA: String { directory.appendingPathComponent("proxy-ca.crt").path }

    func writeKubeconfig(token: String, name: String = "kubeconfig") throws {
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: proxy
              cluster: {server: "\(proxyURL)", certificate-authority: "\(proxyCA)"}
            users:
            - name: peer
              user: {token: "\(token)"}
            contexts:
            - name: proxy
              context: {cluster: proxy, user: peer}
            current-context: proxy

            """
        try kubeconfig.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func process(_ executable: String, _ args: [String]) -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        return (p, out, err)
    }

    func run(_ executable: String, _ args: [String]) async throws -> ChildOutput {
        try await ChildProcess.run(executable, args)
    }

    /// Kills a client at once (SIGKILL: the test runner's children may ignore SIGTERM)
    /// and reaps it, so its sockets are closed when this returns.
    func kill(_ process: Process) async {
        _ = Glibc.kill(process.processIdentifier, SIGKILL)
        await Task.detached { process.waitUntilExit() }.value
    }

    static let kubectlPath = Executables.kubectl
    static let curlPath = Executables.curl

    func kubectlArguments(_ args: [String], kubeconfig: String = "kubeconfig") -> [String] {
        ["--kubeconfig", directory.appendingPathComponent(kubeconfig).path,
         "--cache-dir", directory.appendingPathComponent("cache-\(kubeconfig)").path] + args
    }

    func kubectl(_ args: String..., kubeconfig: String = "kubeconfig") async throws -> ChildOutput {
        try await run(Self.kubectlPath, kubectlArguments(args, kubeconfig: kubeconfig))
    }

    /// curl arguments for `path` through the proxy; `token` nil sends no Authorization.
    func curlArguments(_ path: String, http1: Bool, token: String?, extraHeaders: [String] = [], method: String = "GET") -> [String] {
        var args = ["-sS", "--cacert", proxyCA, http1 ? "--http1.1" : "--http2"]
        args += method == "HEAD" ? ["--head"] : ["-X", method]
        if let token {
            // From a file, so the token never shows in a process listing.
            let file = directory.appendingPathComponent("auth-\(UUID().uuidString).header")
            try? "Authorization: Bearer \(token)\n".write(to: file, atomically: true, encoding: .utf8)
            args += ["-H", "@" + file.path]
        }
        for header in extraHeaders { args += ["-H", header] }
        return args + [proxyURL + path]
    }

    /// One request with curl: the status code and the body.
    func curl(_ path: String, http1: Bool = false, token: String?, extraHeaders: [String] = [],
              method: String = "GET") async throws -> (code: Int, body: String) {
        let args = ["-o", "-", "-w", "\n%{http_code}"]
            + curlArguments(path, http1: http1, token: token, extraHeaders: extraHeaders, method: method)
        let output = try await run(Self.curlPath, args)
        var lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? -1
        return (code, lines.joined(separator: "\n"))
    }
}

