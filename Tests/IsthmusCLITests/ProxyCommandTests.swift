import Foundation
import IsthmusTestSupport
import IsthmusTrust
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("isthmus proxy", .serialized)
struct ProxyCommandTests {
    private let clusterUUID = "0b4e3f66-7a2d-4e55-8f0c-5d1e9b7c3a22"
    private let peerUUID = "8d5f5d2e-1c1a-4a8e-9a53-2f6f4a3d2c11"

    @Test("a configuration error names the flag and exits before listening")
    func configurationError() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "token\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "not a ca".write(toFile: dir + "/ca.crt", atomically: true, encoding: .utf8)
        let missingPeers = try await CLI.run(["proxy", "--listen", "127.0.0.1:0", "--upstream", "https://127.0.0.1:1",
                                        "--upstream-ca", dir + "/ca.crt", "--token-file", dir + "/token",
                                        "--peers", dir + "/missing.json", "--cluster-uuid", clusterUUID])
        #expect(missingPeers.status == 2)
        #expect(missingPeers.stderr.contains("isthmus proxy: --peers: "),
                "\(missingPeers.stderr)")
        let badDuration = try await CLI.run(["proxy", "--peers", "p", "--cluster-uuid", clusterUUID, "--max-watch", "30"])
        #expect(badDuration.status == 2)
        #expect(badDuration.stderr == "isthmus proxy: --max-watch: must be a duration like 90s, 15m or 1h30m, got \"30\"\n",
                "\(badDuration.stderr)")
        let noToken = try await CLI.run(["proxy", "--peers", "p", "--cluster-uuid", clusterUUID, "--token-file", dir + "/none"])
        #expect(noToken.status == 2)
        #expect(noToken.stderr.contains("isthmus proxy: --token-file: cannot read"), "\(noToken.stderr)")
        let badAccessLog = try await CLI.run(["proxy", "--upstream", "https://127.0.0.1:1", "--upstream-ca", dir + "/ca.crt",
                                        "--token-file", dir + "/token", "--peers", "p", "--cluster-uuid", clusterUUID,
                                        "--access-log", "syslog"])
        #expect(badAccessLog.status == 2)
        #expect(badAccessLog.stderr.contains("isthmus proxy: --access-log: must be 'stdout' or 'off', got 'syslog'"), "\(badAccessLog.stderr)")
        let badProtocol = try await CLI.run(["proxy", "--upstream", "https://127.0.0.1:1", "--upstream-ca", dir + "/ca.crt",
                                             "--token-file", dir + "/token", "--peers", "p", "--cluster-uuid", clusterUUID,
                                             "--upstream-short-protocol", "http2"])
        #expect(badProtocol.status == 2)
        #expect(badProtocol.stderr.contains("isthmus proxy: --upstream-short-protocol: must be 'http1.1' or 'h2', got 'http2'"),
                "\(badProtocol.stderr)")
    }

    @Test("a config file error is one line naming FILE:LINE:COL and the field, exit 2 before listening")
    func configFileError() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "token\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try "listen: 127.0.0.1:0\nmaxWatch: 30\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
        let badType = try await CLI.run(["proxy", "--config", dir + "/bad.yaml"])
        #expect(badType.status == 2)
        #expect(badType.stderr == "isthmus proxy: \(dir)/bad.yaml:2:11: maxWatch: expected a string like 90s, 15m or 1h30m (a bare number has no unit), got 30\n",
                "\(badType.stderr)")
        // A value the file got right in kind but wrong in substance is named by its place too.
        try """
            tokenFile: token
            upstreamCA: token
            upstream: https://127.0.0.1:1
            peers: missing.json
            clusterUUID: \(clusterUUID)
            """.write(toFile: dir + "/missing.yaml", atomically: true, encoding: .utf8)
        let missingPeers = try await CLI.run(["proxy", "--config", dir + "/missing.yaml", "--listen", "127.0.0.1:0"])
        #expect(missingPeers.status == 2)
        #expect(missingPeers.stderr.hasPrefix("isthmus proxy: \(dir)/missing.yaml:4:8: peers: "), "\(missingPeers.stderr)")
        #expect(!missingPeers.stderr.contains("serving"))
        let missingFile = try await CLI.run(["proxy", "--config", dir + "/none.yaml"])
        #expect(missingFile.status == 2)
        #expect(missingFile.stderr.hasPrefix("isthmus proxy: --config: cannot read \(dir)/none.yaml"), "\(missingFile.stderr)")
    }

    /// `isthmus apiserver` on a free port with its PKI in `dir/pki`, and the
    /// proxy's ServiceAccount token for it in `dir/token`.
    private func startUpstream(in dir: String) async throws -> (RunningChild, Int) {
        let apiserver = try RunningChild(CLI.binary, ["apiserver", "--listen", "127.0.0.1:0", "--token", "proxy-sa", "--cert-dir", dir + "/pki"])
        guard let line = await apiserver.waitForLine(containing: "serving https://"), let port = CLI.port(in: line) else {
            apiserver.send(SIGKILL)
            struct NotStarted: Error, CustomStringConvertible { var description: String }
            throw NotStarted(description: "isthmus apiserver did not start: \(apiserver.output(.stderr))")
        }
        try "proxy-sa\n".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        return (apiserver, port)
    }

    @Test("examples/proxy.yaml runs the proxy, with flags overriding its paths")
    func exampleConfig() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (apiserver, upstreamPort) = try await startUpstream(in: dir)
        defer { apiserver.send(SIGKILL) }
        let key = SigningKeyPair()
        let ca = try String(contentsOfFile: dir + "/pki/ca.crt", encoding: .utf8)
        let peers = try TrustedPeers([TrustedPeer(clusterUUID: peerUUID, keys: [key.publicKey], rootCA: ca)])
        try peers.encodedJSONString().write(toFile: dir + "/peers.json", atomically: true, encoding: .utf8)
        // The example's certificate paths do not exist here: a generated certificate instead.
        let example = try String(contentsOfFile: CLI.repositoryRoot + "/examples/proxy.yaml", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("tlsCert:") && !$0.hasPrefix("tlsKey:") }
            .joined(separator: "\n")
        try example.write(toFile: dir + "/proxy.yaml", atomically: true, encoding: .utf8)
        let proxy = try RunningChild(CLI.binary, [
            "proxy", "--config", dir + "/proxy.yaml", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
            "--upstream", "https://127.0.0.1:\(upstreamPort)", "--upstream-ca", dir + "/pki/ca.crt",
            "--token-file", dir + "/token", "--peers", dir + "/peers.json", "--policies", CLI.repositoryRoot + "/policies",
            "--write-ca", dir + "/proxy-ca.crt",
        ])
        defer { proxy.send(SIGKILL) }
        let proxyLine = try #require(await proxy.waitForLine(containing: "serving https://"))
        let proxyPort = try #require(CLI.port(in: proxyLine))
        // The audience comes from the file's clusterUUID.
        let now = Int64(Date().timeIntervalSince1970)
        let token = mint(TokenClaims(subject: peerUUID, audience: clusterUUID, scope: .api, notBefore: now - 10,
                                     expiresAt: now + 600), with: key)
        let list = try await curl(["-H", "@" + (try headerFile(token: token, in: dir)),
                             "https://127.0.0.1:\(proxyPort)/api/v1/namespaces"], ca: dir + "/proxy-ca.crt")
        #expect(list.hasSuffix("\n200") && list.contains("NamespaceList"), "\(list)")
    }

    @Test("the proxy logs JSON lines when standard error is not a terminal; --log-format text and --log-level change that")
    func logFormats() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (apiserver, upstreamPort) = try await startUpstream(in: dir)
        defer { apiserver.send(SIGKILL) }
        try TrustedPeers.empty.encodedJSONString().write(toFile: dir + "/peers.json", atomically: true, encoding: .utf8)
        let common = [
            "proxy", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--upstream", "https://127.0.0.1:\(upstreamPort)",
            "--upstream-ca", dir + "/pki/ca.crt", "--token-file", dir + "/token", "--peers", dir + "/peers.json",
            "--policies", CLI.repositoryRoot + "/policies", "--cluster-uuid", clusterUUID,
        ]

        let json = try RunningChild(CLI.binary, common)
        defer { json.send(SIGKILL) }
        let serving = try #require(await json.waitForLine(containing: "serving https://"))
        #expect(CLI.port(in: serving) != nil)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(serving.utf8)) as? [String: Any], "\(serving)")
        #expect(object["level"] as? String == "info")
        #expect(object["label"] as? String == "isthmus.proxy")
        #expect((object["message"] as? String)?.hasPrefix("serving https://127.0.0.1:") == true, "\(object)")
        #expect(object["time"] is String)
        json.send(SIGTERM)
        #expect(await json.waitForExit() == 0)
        // Every line the proxy wrote on standard error is a JSON object, the warning included.
        let lines = json.output(.stderr).split(separator: "\n")
        #expect(lines.contains { $0.contains(#""level":"warning""#) && $0.contains("no --tls-cert/--tls-key") }, "\(lines)")
        #expect(lines.contains { $0.contains(#""message":"shutting down""#) }, "\(lines)")
        for line in lines {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not JSON: \(line)")
        }

        let text = try RunningChild(CLI.binary, common + ["--log-format", "text", "--log-level", "warning"])
        defer { text.send(SIGKILL) }
        _ = try #require(await text.waitForLine(containing: " warning isthmus.proxy: no --tls-cert/--tls-key"))
        text.send(SIGTERM)
        #expect(await text.waitForExit() == 0)
        let textOutput = text.output(.stderr)
        #expect(!textOutput.contains("isthmus.proxy: serving") && !textOutput.contains("shutting down"),
                "info is below --log-level warning: \(textOutput)")

        let bad = try await CLI.run(common + ["--log-format", "xml"])
        #expect(bad.status != 0 && bad.stderr.contains("--log-format"), "\(bad)")
    }

    @Test("isthmus proxy in front of isthmus apiserver serves /healthz and an allowed list to a peer token")
    func endToEnd() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (apiserver, upstreamPort) = try await startUpstream(in: dir)
        defer { apiserver.send(SIGKILL) }
        let key = SigningKeyPair()
        let ca = try String(contentsOfFile: dir + "/pki/ca.crt", encoding: .utf8)
        let peers = try TrustedPeers([TrustedPeer(clusterUUID: peerUUID, keys: [key.publicKey], rootCA: ca)])
        try peers.encodedJSONString().write(toFile: dir + "/peers.json", atomically: true, encoding: .utf8)
        let proxy = try RunningChild(CLI.binary, [
            "proxy", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--upstream", "https://127.0.0.1:\(upstreamPort)",
            "--upstream-ca", dir + "/pki/ca.crt", "--token-file", dir + "/token", "--peers", dir + "/peers.json",
            "--policies", CLI.repositoryRoot + "/policies", "--cluster-uuid", clusterUUID, "--write-ca", dir + "/proxy-ca.crt",
            "--admin-listen", "127.0.0.1:0", "--audit-log", dir + "/audit.log", "--readiness-probe-interval", "1s",
        ])
        defer { proxy.send(SIGKILL) }
        let proxyLine = try #require(await proxy.waitForLine(containing: "serving https://"))
        let proxyPort = try #require(CLI.port(in: proxyLine))

        let now = Int64(Date().timeIntervalSince1970)
        let token = mint(TokenClaims(subject: peerUUID, audience: clusterUUID, scope: .api, notBefore: now - 10,
                                     expiresAt: now + 600), with: key)
        try "Authorization: Bearer \(token)\n".write(toFile: dir + "/auth.header", atomically: true, encoding: .utf8)
        func curl(_ path: String, auth: Bool) async throws -> String {
            try await ChildProcess.run(Executables.curl, ["-sS", "--cacert", dir + "/proxy-ca.crt", "-w", "\n%{http_code}"]
                + (auth ? ["-H", "@" + dir + "/auth.header"] : []) + ["https://127.0.0.1:\(proxyPort)\(path)"]).stdout
        }
        #expect(try await curl("/healthz", auth: false) == "ok\n200")
        let list = try await curl("/api/v1/namespaces", auth: true)
        #expect(list.hasSuffix("\n200") && list.contains("NamespaceList"), "\(list)")
        #expect(try await curl("/api/v1/namespaces", auth: false).hasSuffix("\n401"))

        // The admin listener: plain HTTP, /metrics counts what just happened, /readyz probes the upstream.
        let adminLine = try #require(await proxy.waitForLine(containing: "admin http://"))
        let adminPort = try #require(CLI.port(in: adminLine, scheme: "http"))
        func admin(_ path: String) async throws -> String {
            try await ChildProcess.run(Executables.curl, ["-sS", "-w", "\n%{http_code}", "http://127.0.0.1:\(adminPort)\(path)"]).stdout
        }
        let metrics = try await admin("/metrics")
        #expect(metrics.contains(#"isthmus_proxy_requests_total{peer="\#(peerUUID)",verb="list",resource="namespaces",code="200"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"isthmus_proxy_denials_total{reason="unauthorized"} 1"#), "\(metrics)")
        var ready = ""
        for _ in 0..<300 where !ready.hasSuffix("\n200") {
            ready = try await admin("/readyz?verbose")
            if !ready.hasSuffix("\n200") { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(ready.contains("[+]upstream ok") && ready.hasSuffix("\n200"), "\(ready)")
        // The audit log is written from its own thread: poll for the allowed list.
        var audit = ""
        for _ in 0..<300 where !audit.contains(#""resource":"namespaces""#) {
            audit = (try? String(contentsOfFile: dir + "/audit.log", encoding: .utf8)) ?? ""
            if !audit.contains(#""resource":"namespaces""#) { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(audit.contains(#""peer":"\#(peerUUID)","verb":"list","group":"","resource":"namespaces""#), "\(audit)")
        #expect(audit.contains(#""decision":"allow""#) && audit.contains(#""decision":"deny""#), "\(audit)")
        #expect(!audit.contains(token), "the audit log holds a token")
    }

    @Test("SIGHUP makes isthmus proxy re-read its peers file at once")
    func hangupReloads() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (apiserver, upstreamPort) = try await startUpstream(in: dir)
        defer { apiserver.send(SIGKILL) }
        let ca = try String(contentsOfFile: dir + "/pki/ca.crt", encoding: .utf8)
        let key = SigningKeyPair(), newPeerKey = SigningKeyPair()
        let newPeer = "5c7d1e2f-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
        func writePeers(_ peers: [TrustedPeer]) throws {
            try TrustedPeers(peers).encodedJSONString().write(toFile: dir + "/peers.json", atomically: true, encoding: .utf8)
        }
        try writePeers([TrustedPeer(clusterUUID: peerUUID, keys: [key.publicKey], rootCA: ca)])
        // The poll is an hour away: only SIGHUP can make the change visible.
        let proxy = try RunningChild(CLI.binary, [
            "proxy", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--upstream", "https://127.0.0.1:\(upstreamPort)",
            "--upstream-ca", dir + "/pki/ca.crt", "--token-file", dir + "/token", "--peers", dir + "/peers.json",
            "--policies", CLI.repositoryRoot + "/policies", "--cluster-uuid", clusterUUID, "--write-ca", dir + "/proxy-ca.crt",
            "--reload-interval", "1h",
        ])
        defer { proxy.send(SIGKILL) }
        let proxyLine = try #require(await proxy.waitForLine(containing: "serving https://"))
        let proxyPort = try #require(CLI.port(in: proxyLine))
        let now = Int64(Date().timeIntervalSince1970)
        let token = mint(TokenClaims(subject: newPeer, audience: clusterUUID, scope: .api, notBefore: now - 10,
                                     expiresAt: now + 600), with: newPeerKey)
        let header = try headerFile(token: token, in: dir)
        func list() async throws -> String {
            try await curl(["-H", "@" + header, "https://127.0.0.1:\(proxyPort)/api/v1/namespaces"], ca: dir + "/proxy-ca.crt")
        }
        await #expect(try list().hasSuffix("\n401"))
        try writePeers([TrustedPeer(clusterUUID: peerUUID, keys: [key.publicKey], rootCA: ca),
                        TrustedPeer(clusterUUID: newPeer, keys: [newPeerKey.publicKey], rootCA: ca)])
        proxy.send(SIGHUP)
        let deadline = Date().addingTimeInterval(20)
        var last = ""
        while Date() < deadline {
            last = try await list()
            if last.hasSuffix("\n200") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(last.hasSuffix("\n200") && last.contains("NamespaceList"), "\(last)")
        #expect(proxy.isRunning, "SIGHUP must not stop the proxy")
    }

    @Test("isthmus dev: the printed kubectl commands work as the fake peer, delete is refused, Ctrl-C stops it")
    func dev() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dev = try RunningChild(CLI.binary, ["dev", "--policies", CLI.repositoryRoot + "/policies"], workingDirectory: dir)
        defer { dev.send(SIGKILL) }
        _ = try #require(await dev.waitForLine(containing: "Ctrl-C stops everything"))
        let kubeconfig = dir + "/.isthmus-dev/peer.kubeconfig"
        #expect(FileManager.default.fileExists(atPath: kubeconfig))
        func kubectl(_ args: String...) async throws -> CLIResult {
            try await ChildProcess.run(Executables.kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", dir + "/kube-cache"] + args)
        }
        let services = try await kubectl("get", "svc", "-A")
        #expect(services.status == 0 && services.stdout.contains("istiod") && services.stdout.contains("cart"), "\(services)")
        let slices = try await kubectl("get", "endpointslices", "-n", "demo")
        #expect(slices.status == 0 && slices.stdout.contains("web-abc12"), "\(slices)")
        let delete = try await kubectl("delete", "svc", "web", "-n", "demo")
        #expect(delete.status != 0 && delete.stderr.contains("read-only"), "\(delete)")
        dev.send(SIGINT)
        #expect(await dev.waitForExit() == 0)
    }

    @Test("isthmus dev --churn 1s: the peer's watch shows the EndpointSlice and Service changing on their own")
    func devChurn() async throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dev = try RunningChild(CLI.binary, ["dev", "--churn", "1s", "--policies", CLI.repositoryRoot + "/policies"], workingDirectory: dir)
        defer { dev.send(SIGKILL) }
        _ = try #require(await dev.waitForLine(containing: "Every 1s the EndpointSlice web-abc12"))
        let kubeconfig = dir + "/.isthmus-dev/peer.kubeconfig"
        let watch = try RunningChild(Executables.kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", dir + "/kube-cache",
                                                           "get", "endpointslices", "-n", "demo", "-w", "--output-watch-events"])
        defer { watch.send(SIGKILL) }
        let modified = await watch.waitForLine(containing: "MODIFIED", on: .stdout, deadline: .seconds(30))
        #expect(modified?.contains("web-abc12") == true, "\(watch.output(.stdout))\n\(watch.output(.stderr))")
        let service = try await ChildProcess.run(Executables.kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", dir + "/kube-cache",
                                                                       "-n", "demo", "get", "svc", "web", "-o", "jsonpath={.metadata.annotations}"])
        #expect(service.stdout.contains("isthmus.dev/churn"), "\(service)")
        let bad = try await ChildProcess.run(CLI.binary, ["dev", "--churn", "often"], workingDirectory: dir)
        #expect(bad.status != 0 && bad.stderr.contains("--churn must be a period like 1s"), "\(bad)")
        dev.send(SIGINT)
        #expect(await dev.waitForExit() == 0)
    }

    private func headerFile(token: String, in dir: String) throws -> String {
        let path = dir + "/auth-\(UUID().uuidString).header"
        try "Authorization: Bearer \(token)\n".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// curl's body and status code, `BODY\nCODE`.
    private func curl(_ arguments: [String], ca: String?) async throws -> String {
        try await ChildProcess.run(Executables.curl, ["-sS", "-w", "\n%{http_code}"] + (ca.map { ["--cacert", $0] } ?? []) + arguments).stdout
    }
}
