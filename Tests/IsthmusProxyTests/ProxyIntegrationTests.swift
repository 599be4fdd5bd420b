import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTestSupport
import IsthmusTrust
import Testing

private let unauthorizedBody = #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#

private func patchLabel(_ upstream: FakeAPIServer, service: String, value: String) throws {
    try upstream.mergePatch(resource: "services", namespace: "demo", name: service,
                            patch: .object([("metadata", .object([("labels", .object([("step", .string(value))]))]))]))
}

@Suite("Proxy: kubectl and curl through the proxy to the fake API server", .serialized)
struct ProxyIntegrationTests {
    @Test("kubectl and curl are installed")
    func toolsPresent() {
        #expect(FileManager.default.isExecutableFile(atPath: ProxyHarness.kubectlPath))
        #expect(FileManager.default.isExecutableFile(atPath: ProxyHarness.curlPath))
    }

    @Test("kubectl get svc -A lists the seeded services over HTTP/2, with the proxy's token upstream")
    func getServices() async throws {
        let h = try await ProxyHarness.start()
        do {
            let list = try await h.kubectl("get", "svc", "-A")
            #expect(list.status == 0, "\(list)")
            for name in ["web", "api", "db"] { #expect(list.stdout.contains(name), "\(list)") }
            let yaml = try await h.kubectl("get", "svc", "web", "-n", "demo", "-o", "yaml")
            #expect(yaml.status == 0 && yaml.stdout.contains("name: web") && yaml.stdout.contains("resourceVersion:"), "\(yaml)")
            // HEAD is admitted as get and forwarded as HEAD; the fake server answers
            // it as GET without a body, which is relayed as is on either protocol.
            for http1 in [false, true] {
                let head = try await h.curl("/api/v1/namespaces/demo/services/web", http1: http1, token: h.peerToken, method: "HEAD")
                #expect(head.code == 200, "HEAD over \(http1 ? "HTTP/1.1" : "HTTP/2"): \(head)")
            }
            #expect(h.upstream.recentRequests.filter { $0.method == "HEAD" }.count == 2)
            // A refused HEAD gets the Status's headers and no body; the HTTP/1.1
            // connection stays usable (curl reuses it for the second URL).
            let refusedHead = try await h.run(ProxyHarness.curlPath, ["-sS", "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\n",
                "--cacert", h.proxyCA, "--http1.1", "--head", "-H", "Authorization: Bearer not-a-jwt",
                h.proxyURL + "/api/v1/services", h.proxyURL + "/healthz"])
            #expect(refusedHead.status == 0 && refusedHead.stdout == "401 1\n200 0\n", "\(refusedHead)")
            let resources = try await h.kubectl("api-resources")
            #expect(resources.status == 0 && resources.stdout.contains("services"), "\(resources)")

            let seen = h.upstream.recentRequests.filter { $0.uri.contains("/services") && $0.method == "GET" }
            #expect(!seen.isEmpty)
            // The upstream accepts only the proxy's ServiceAccount token: every 200 proves it was sent.
            #expect(seen.allSatisfy { $0.statusCode == 200 }, "\(seen.map { ($0.uri, $0.statusCode) })")
            // Short requests go upstream over HTTP/1.1 keep-alive connections (UpstreamConfiguration.shortRequestsOverHTTP1).
            #expect(seen.allSatisfy { !$0.http2 })
            for request in h.upstream.recentRequests {
                #expect(!request.headers.contains { $0.0.lowercased().hasPrefix("impersonate-") })
                #expect(!request.headers.contains { $0.1.contains(h.peerToken) })
                #expect(request.header("authorization") == "<redacted>")
            }
        }
        await h.stop()
    }

    @Test("a resource outside the policy is Forbidden with the API server's wording, and never forwarded")
    func forbidden() async throws {
        let h = try await ProxyHarness.start()
        do {
            let result = try await h.kubectl("get", "configmaps", "-A")
            #expect(result.status != 0)
            #expect(result.stderr.contains(
                #"configmaps is forbidden: peer "\#(testPeerUUID)" cannot list resource "configmaps" in API group "" at the cluster scope"#),
                "\(result)")
            let raw = try await h.curl("/api/v1/namespaces/demo/configmaps/settings", token: h.peerToken)
            #expect(raw.code == 403)
            #expect(raw.body.hasPrefix(#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"settings\" is forbidden: "#), "\(raw)")
            #expect(raw.body.contains(#""reason":"Forbidden","details":{"name":"settings","kind":"configmaps"},"code":403}"#), "\(raw)")
            #expect(!h.upstream.recentRequests.contains { $0.uri.contains("configmaps") })
        }
        await h.stop()
    }

    @Test("kubectl delete and --as are refused, and the upstream never sees them")
    func writesRefused() async throws {
        let h = try await ProxyHarness.start()
        do {
            let delete = try await h.kubectl("delete", "svc", "web", "-n", "demo")
            #expect(delete.status != 0)
            #expect(delete.stderr.contains(#"services "web" is forbidden"#) && delete.stderr.contains("read-only"), "\(delete)")
            let impersonate = try await h.kubectl("get", "svc", "-n", "demo", "--as=admin")
            #expect(impersonate.status != 0)
            #expect(impersonate.stderr.contains("Error from server (Forbidden)")
                && impersonate.stderr.contains("never allows impersonation"), "\(impersonate)")
            // Still there, and no write or impersonated request reached the upstream.
            _ = try h.upstream.get(resource: "services", namespace: "demo", name: "web")
            #expect(!h.upstream.recentRequests.contains { $0.method != "GET" && $0.method != "HEAD" })
            #expect(!h.upstream.recentRequests.contains { $0.header("impersonate-user") != nil })
        }
        await h.stop()
    }

    @Test("a wrong, foreign-signed or missing token gets exactly the API server's 401, on HTTP/2 and HTTP/1.1")
    func unauthorized() async throws {
        let h = try await ProxyHarness.start()
        do {
            try h.writeKubeconfig(token: "not-a-jwt", name: "wrong")
            let result = try await h.kubectl("get", "svc", "-A", kubeconfig: "wrong")
            #expect(result.status != 0)
            // kubectl's wording for a 401 from discovery, as against a real API server.
            #expect(result.stderr.contains("error: You must be logged in to the server"), "\(result)")
            let now = Int64(Date().timeIntervalSince1970)
            let foreign = mint(TokenClaims(subject: testPeerUUID, audience: localClusterUUID, scope: .api,
                                           notBefore: now - 10, expiresAt: now + 3600), with: SigningKeyPair())
            for http1 in [false, true] {
                for token in ["not-a-jwt", foreign, nil] as [String?] {
                    let raw = try await h.curl("/api/v1/services", http1: http1, token: token)
                    #expect(raw.code == 401)
                    #expect(raw.body == unauthorizedBody + "\n", "\(raw)")
                }
            }
            #expect(!h.upstream.recentRequests.contains { $0.uri.contains("/services") })
        }
        await h.stop()
    }

    @Test("/healthz answers ok without a token")
    func healthz() async throws {
        let h = try await ProxyHarness.start()
        let result = try await h.curl("/healthz", token: nil)
        #expect(result.code == 200 && result.body == "ok", "\(result)")
        await h.stop()
    }

    @Test("kubectl get -w (HTTP/2) through the proxy sees an update made afterwards")
    func watchHTTP2() async throws {
        let h = try await ProxyHarness.start()
        let outFile = h.directory.appendingPathComponent("watch.out")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let (p, _, _) = h.process(ProxyHarness.kubectlPath, h.kubectlArguments(
            ["get", "service", "web", "-n", "demo", "-w", "-o", "jsonpath={.metadata.labels.step}{\"\\n\"}"]))
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        try p.run()
        await eventually("kubectl opened its watch through the proxy", deadline: .seconds(30)) { h.upstream.openWatchCount >= 1 }
        try patchLabel(h.upstream, service: "web", value: "seen-through-proxy")
        await eventually("kubectl printed the update", deadline: .seconds(30)) {
            (try? String(contentsOf: outFile, encoding: .utf8))?.contains("seen-through-proxy") ?? false
        }
        #expect(h.upstream.recentRequests.contains { $0.uri.contains("watch=true") && $0.http2 })
        // kubectl goes away: its connection closes, and the upstream watch with it.
        await h.kill(p)
        await eventually("the upstream watch closed after kubectl left", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        await h.stop()
    }

    @Test("an HTTP/1.1 chunked watch sees an update; a client that disconnects closes the upstream watch")
    func watchHTTP1AndDisconnect() async throws {
        let h = try await ProxyHarness.start()
        let outFile = h.directory.appendingPathComponent("watch1.out")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let (p, _, _) = h.process(ProxyHarness.curlPath, ["-N"] + h.curlArguments(
            "/api/v1/namespaces/demo/services?watch=1&fieldSelector=metadata.name%3Dapi", http1: true, token: h.peerToken))
        p.standardOutput = try FileHandle(forWritingTo: outFile)
        try p.run()
        await eventually("curl opened its watch through the proxy", deadline: .seconds(30)) { h.upstream.openWatchCount == 1 }
        try patchLabel(h.upstream, service: "api", value: "seen-over-http1")
        await eventually("curl received the MODIFIED event", deadline: .seconds(30)) {
            let text = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
            return text.contains(#"{"type":"MODIFIED""#) && text.contains("seen-over-http1")
        }
        #expect(h.upstream.recentRequests.contains { $0.uri.contains("watch=1") })
        await h.kill(p)
        await eventually("the upstream watch closed after curl disconnected", deadline: .seconds(10)) {
            h.upstream.openWatchCount == 0
        }
        await h.stop()
    }

    @Test("a watch is ended cleanly at the proxy's watch limit")
    func watchLimit() async throws {
        let h = try await ProxyHarness.start(configure: { $0.watchLimit = WatchLimit(maximum: .seconds(1), jitter: 0) })
        for http1 in [true, false] {
            let result = try await h.run(ProxyHarness.curlPath, ["-N"] + h.curlArguments(
                "/api/v1/namespaces/demo/services?watch=1", http1: http1, token: h.peerToken))
            // curl exits 0 only if the response ended properly (last chunk / END_STREAM).
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains(#"{"type":"ADDED""#), "\(result)")
        }
        await eventually("the upstream watches closed at the limit", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        await h.stop()
    }

    /// client-go re-watches from its last resourceVersion after a clean end (as
    /// after a timeout); after an HTTP/2 stream error it re-lists. So a watch cut
    /// between two events ends cleanly, and only one cut inside an event is
    /// ended uncleanly: the client must not take half an event for a whole one.
    @Test("an upstream that cuts a watch: between events the client's watch ends cleanly, inside one uncleanly; what came before arrives; a re-watch works",
          arguments: [(["h2", "http/1.1"], false), (["http/1.1"], false), (["h2", "http/1.1"], true), (["http/1.1"], true)])
    func upstreamCutsWatch(upstreamProtocols: [String], midEvent: Bool) async throws {
        let h = try await ProxyHarness.start(configure: { $0.upstream.applicationProtocols = upstreamProtocols })
        var faults = FaultInjection()
        faults.cutWatchesAfterEvents = 2
        faults.cutWatchesMidEvent = midEvent
        h.upstream.setFaults(faults)
        for http1 in [true, false] {
            // Three services: the cut comes after the second ADDED event (or inside it).
            let cut = try await h.run(ProxyHarness.curlPath, ["-N"] + h.curlArguments(
                "/api/v1/namespaces/demo/services?watch=1", http1: http1, token: h.peerToken))
            let events = cut.stdout.components(separatedBy: #"{"type":"ADDED""#).count - 1
            // curl exits 0 only on a clean end (last chunk / END_STREAM); 18 is a
            // partial transfer, 92 an HTTP/2 stream error.
            if cut.status == 0 {
                #expect(cut.stdout.isEmpty || cut.stdout.hasSuffix("\n"), "a clean end only after a whole event: \(cut)")
            }
            if upstreamProtocols == ["http/1.1"] {
                // The upstream's bytes before its close all reach the client.
                #expect(events == 2, "\(cut)")
                #expect((cut.status == 0) == !midEvent, "\(cut)")
            } else {
                // Over HTTP/2 the fake server's RST_STREAM may overtake the DATA it had
                // buffered, so the proxy receives less, perhaps only the head.
                #expect(events <= 2, "\(cut)")
                if !midEvent { #expect(cut.status == 0, "\(cut)") }
            }
        }
        await eventually("the cut watches are gone upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        h.upstream.setFaults(FaultInjection())
        let again = try await h.curl("/api/v1/namespaces/demo/services?watch=1&timeoutSeconds=1", token: h.peerToken)
        #expect(again.code == 200 && again.body.components(separatedBy: #"{"type":"ADDED""#).count - 1 == 3, "\(again)")
        await h.stop()
    }

    @Test("watches that fill their lane get 429 while gets still go through on their own connections")
    func watchesDoNotStarveGets() async throws {
        // One event loop, so one pool and known limits: one watch connection, and the
        // API server allows two streams on it (its SETTINGS are the budget, not a constant).
        let h = try await ProxyHarness.start(configure: {
            $0.threads = 1
            $0.upstream.limits.watchConnections = 1
        }, configureUpstream: { $0.maximumConcurrentStreams = 2 })
        var watchers: [Process] = []
        for index in 0..<2 {
            let out = h.directory.appendingPathComponent("watch-\(index).out")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            let (p, _, _) = h.process(ProxyHarness.curlPath, ["-N"] + h.curlArguments(
                "/api/v1/namespaces/demo/services?watch=1", http1: false, token: h.peerToken))
            p.standardOutput = try FileHandle(forWritingTo: out)
            try p.run()
            watchers.append(p)
        }
        await eventually("both watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 2 }
        let third = try await h.curl("/api/v1/namespaces/demo/services?watch=1", token: h.peerToken)
        #expect(third.code == 429 && third.body.contains(#""reason":"TooManyRequests""#), "\(third)")
        for _ in 0..<3 {
            let get = try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken)
            #expect(get.code == 200, "\(get)")
        }
        for p in watchers { await h.kill(p) }
        await eventually("the watches closed upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        let again = try await h.curl("/api/v1/namespaces/demo/services?watch=1&timeoutSeconds=1", token: h.peerToken)
        #expect(again.code == 200, "a released stream makes room again: \(again)")
        await h.stop()
    }

    @Test("shutdown ends open watches cleanly (HTTP/1.1 and HTTP/2) so clients re-watch")
    func gracefulShutdown() async throws {
        let h = try await ProxyHarness.start()
        var watchers: [(Process, URL)] = []
        for http1 in [true, false] {
            let out = h.directory.appendingPathComponent("watch-\(http1).out")
            FileManager.default.createFile(atPath: out.path, contents: nil)
            let (p, _, _) = h.process(ProxyHarness.curlPath, ["-N"] + h.curlArguments(
                "/api/v1/namespaces/demo/services?watch=1", http1: http1, token: h.peerToken))
            p.standardOutput = try FileHandle(forWritingTo: out)
            try p.run()
            watchers.append((p, out))
        }
        await eventually("both watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 2 }
        try await h.proxy.shutdown(grace: .seconds(20))
        for (p, out) in watchers {
            await Task.detached { p.waitUntilExit() }.value
            // curl exits 0 only when the response ended properly (last chunk / END_STREAM).
            #expect(p.terminationStatus == 0, "curl exit \(p.terminationStatus)")
            #expect(((try? String(contentsOf: out, encoding: .utf8)) ?? "").contains(#"{"type":"ADDED""#))
        }
        await eventually("the upstream watches closed", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        await h.stop()
    }

    @Test("the ServiceAccount token is re-read when its file changes")
    func tokenRotation() async throws {
        let h = try await ProxyHarness.start(tokenFileContent: "stale-token\n")
        do {
            // The upstream refuses the stale token: the proxy's fault, a 502, not the peer's 401.
            let before = try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken)
            #expect(before.code == 502 && before.body.contains("the API server rejected the proxy's credentials"), "\(before)")
            try (proxySAToken + "\n").write(to: h.tokenFile, atomically: true, encoding: .utf8)
            await eventually("the proxy picked up the rotated token", deadline: .seconds(30)) {
                (try? await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken).code) == 200
            }
        }
        await h.stop()
    }

    @Test("an unreachable upstream is a 503 Status, a silent one a 504 Status, never a hang")
    func upstreamFailures() async throws {
        // A port nothing listens on: bind one, note it, close it.
        let down = try await ProxyHarness.start(upstreamURL: { _ in "https://127.0.0.1:1" })
        do {
            let result = try await down.curl("/api/v1/namespaces/demo/services", token: down.peerToken)
            #expect(result.code == 503, "\(result)")
            #expect(result.body.contains(#""reason":"ServiceUnavailable""#) && result.body.contains(#""code":503"#), "\(result)")
        }
        await down.stop()

        let slow = try await ProxyHarness.start(configure: { $0.upstream.responseHeaderTimeout = .milliseconds(500) })
        do {
            var faults = FaultInjection()
            faults.responseDelay = .seconds(30)
            slow.upstream.setFaults(faults)
            let result = try await slow.curl("/api/v1/namespaces/demo/services", token: slow.peerToken)
            #expect(result.code == 504, "\(result)")
            #expect(result.body.contains(#""reason":"Timeout""#) && result.body.contains(#""code":504"#), "\(result)")
        }
        await slow.stop()
    }

    @Test("an HTTP/1.1-only upstream is used one request per connection, for gets and watches")
    func http1Upstream() async throws {
        let h = try await ProxyHarness.start(configure: { $0.upstream.applicationProtocols = ["http/1.1"] })
        do {
            let list = try await h.kubectl("get", "svc", "-A")
            #expect(list.status == 0 && list.stdout.contains("web"), "\(list)")
            #expect(h.upstream.recentRequests.contains { $0.uri.contains("/services") })
            #expect(!h.upstream.recentRequests.contains { $0.http2 })
            let head = try await h.curl("/api/v1/namespaces/demo/services/web", token: h.peerToken, method: "HEAD")
            #expect(head.code == 200, "HEAD to an HTTP/1.1 upstream: \(head)")
            #expect(h.upstream.recentRequests.contains { $0.method == "HEAD" })

            let outFile = h.directory.appendingPathComponent("watch.out")
            FileManager.default.createFile(atPath: outFile.path, contents: nil)
            let (p, _, _) = h.process(ProxyHarness.curlPath, ["-N"] + h.curlArguments(
                "/api/v1/namespaces/demo/services?watch=1", http1: false, token: h.peerToken))
            p.standardOutput = try FileHandle(forWritingTo: outFile)
            try p.run()
            await eventually("the watch is open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 1 }
            try patchLabel(h.upstream, service: "db", value: "over-h1-upstream")
            await eventually("the client received the event", deadline: .seconds(30)) {
                ((try? String(contentsOf: outFile, encoding: .utf8)) ?? "").contains("over-h1-upstream")
            }
            await h.kill(p)
            await eventually("the upstream watch closed after the client left", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        }
        await h.stop()
    }
}
