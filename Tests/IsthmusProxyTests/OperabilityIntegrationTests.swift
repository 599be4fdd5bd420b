import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTestSupport
import Testing

extension ProxyHarness {
    var adminURL: String { "http://127.0.0.1:\(proxy.adminPort ?? -1)" }

    /// A plain-HTTP GET on the admin listener with curl: status code and body.
    func admin(_ path: String) async throws -> (code: Int, body: String) {
        let output = try await run(Self.curlPath, ["-sS", "-o", "-", "-w", "\n%{http_code}", adminURL + path])
        var lines = output.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.popLast() ?? "") ?? -1
        return (code, lines.joined(separator: "\n"))
    }

    /// Scrapes `/metrics` with curl and parses the exposition.
    func scrape() async throws -> [String: Double] {
        let (code, body) = try await admin("/metrics")
        #expect(code == 200)
        return parseExposition(body).samples
    }

    /// The JSON lines of a log file.
    func logLines(_ name: String) throws -> [JSON] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        return try text.split(separator: "\n").map { try JSON(parsing: String($0)) }
    }

    /// Removes the log directory that `access.log` and `audit.log` link to.
    func removeLogs() {
        let link = directory.appendingPathComponent("access.log").path
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { return }
        try? FileManager.default.removeItem(at: URL(fileURLWithPath: target).deletingLastPathComponent())
    }

    static func startWithOperations(
        upstreamTokens: [String: String] = [proxySAToken: "system:serviceaccount:isthmus:proxy"],
        probeInterval: Duration = .milliseconds(200)
    ) async throws -> ProxyHarness {
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-logs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let h = try await ProxyHarness.start(upstreamTokens: upstreamTokens, configure: { configuration in
            configuration.admin = AdminListenerConfiguration(host: "127.0.0.1", port: 0)
            configuration.accessLog = .file(logs.appendingPathComponent("access.log").path)
            configuration.auditLog = .file(logs.appendingPathComponent("audit.log").path)
            configuration.readinessProbeInterval = probeInterval
        })
        // The logs go next to the harness's other files, so stop() removes them.
        for name in ["access.log", "audit.log"] {
            try FileManager.default.createSymbolicLink(at: h.directory.appendingPathComponent(name),
                                                       withDestinationURL: logs.appendingPathComponent(name))
        }
        return h
    }
}

private func string(_ json: JSON, _ key: String) -> String? { json[key]?.stringValue }
private func int(_ json: JSON, _ key: String) -> Int? { json[key]?.intValue }

@Suite("Proxy operability: /metrics, /readyz, access and audit logs, the proxy's rejected credentials", .serialized)
struct OperabilityIntegrationTests {
    @Test("after real requests, /metrics counts them by peer, verb, resource and code, and the logs record each one")
    func metricsAndLogs() async throws {
        let h = try await ProxyHarness.startWithOperations()
        do {
            let get = try await h.curl("/api/v1/namespaces/demo/services/web", token: h.peerToken)
            #expect(get.code == 200, "\(get)")
            let again = try await h.curl("/api/v1/namespaces/demo/services/web", http1: true, token: h.peerToken)
            #expect(again.code == 200, "\(again)")
            let delete = try await h.curl("/api/v1/namespaces/demo/services/web", token: h.peerToken, method: "DELETE")
            #expect(delete.code == 403, "\(delete)")
            let forbidden = try await h.curl("/api/v1/namespaces/demo/configmaps/settings", token: h.peerToken)
            #expect(forbidden.code == 403, "\(forbidden)")
            let unauthorized = try await h.curl("/api/v1/services", token: h.peerToken + "x")
            #expect(unauthorized.code == 401, "\(unauthorized)")
            let list = try await h.kubectl("get", "svc", "-A")
            #expect(list.status == 0, "\(list)")

            // A watch shows in the open-watches gauge while it runs, and leaves it when it ends.
            let (watch, _, _) = h.process(ProxyHarness.kubectlPath, h.kubectlArguments(["get", "svc", "-A", "-w"]))
            try watch.run()
            await eventually("the watch is counted open", deadline: .seconds(30)) {
                (try? await h.scrape()["isthmus_proxy_open_watches"]) == 1
            }
            await h.kill(watch)
            await eventually("the watch is no longer counted", deadline: .seconds(30)) {
                (try? await h.scrape()["isthmus_proxy_open_watches"]) == 0
            }

            let (code, text) = try await h.admin("/metrics")
            #expect(code == 200)
            let parsed = parseExposition(text)
            let m = parsed.samples
            let peer = testPeerUUID
            #expect(m[#"isthmus_proxy_requests_total{peer="\#(peer)",verb="get",resource="services",code="200"}"#] == 2, "\(text)")
            #expect(m[#"isthmus_proxy_requests_total{peer="\#(peer)",verb="list",resource="services",code="200"}"#] == 2, "\(text)")
            #expect(m[#"isthmus_proxy_requests_total{peer="",verb="delete",resource="",code="403"}"#] == 1, "\(text)")
            // Authenticated, then refused by the policy: the peer is known, the resource is not a label.
            #expect(m[#"isthmus_proxy_requests_total{peer="\#(peer)",verb="get",resource="",code="403"}"#] == 1, "\(text)")
            #expect(m[#"isthmus_proxy_requests_total{peer="",verb="list",resource="",code="401"}"#] == 1, "\(text)")
            #expect(m[#"isthmus_proxy_requests_total{peer="\#(peer)",verb="watch",resource="services",code="200"}"#] == 1, "\(text)")
            #expect(m[#"isthmus_proxy_denials_total{reason="read_only"}"#] == 1)
            #expect(m[#"isthmus_proxy_denials_total{reason="forbidden"}"#] == 1)
            #expect(m[#"isthmus_proxy_denials_total{reason="unauthorized"}"#] == 1)
            // The peer token was verified once, then found in the cache.
            #expect(m["isthmus_proxy_token_cache_misses_total"] ?? 0 >= 1)
            #expect(m["isthmus_proxy_token_cache_hits_total"] ?? 0 >= 3, "\(text)")
            // Two curl GETs plus kubectl's discovery GETs, each timed to its response head.
            let timedGets = m[#"isthmus_proxy_upstream_response_seconds_count{verb="get"}"#] ?? 0
            #expect(timedGets >= 2, "\(text)")
            #expect(m[#"isthmus_proxy_upstream_response_seconds_bucket{verb="get",le="+Inf"}"#] == timedGets)
            #expect(m[#"isthmus_proxy_upstream_response_seconds_count{verb="watch"}"#] == 1, "\(text)")
            #expect(m["isthmus_proxy_bytes_relayed_total"] ?? 0 > 1000, "\(text)")
            #expect(m["isthmus_proxy_upstream_cancelled_by_client_total"] ?? 0 >= 1, "\(text)")
            for family in ["isthmus_proxy_requests_total", "isthmus_proxy_denials_total", "isthmus_proxy_open_watches",
                           "isthmus_proxy_upstream_response_seconds", "isthmus_proxy_token_cache_hits_total",
                           "isthmus_proxy_token_cache_misses_total", "isthmus_proxy_reloads_total",
                           "isthmus_proxy_bytes_relayed_total", "isthmus_proxy_log_lines_dropped_total",
                           "isthmus_proxy_watches_revoked_total"] {
                #expect(parsed.types[family] != nil && parsed.helps.contains(family), "\(family) has no HELP/TYPE")
            }
            h.proxy.recordReload(source: "policy", succeeded: false)
            #expect(try await h.scrape()[#"isthmus_proxy_reloads_total{source="policy",result="failure"}"#] == 1)

            // Logs: written off the event loops, so poll until the last request shows.
            var access: [JSON] = []
            var audit: [JSON] = []
            await eventually("every request is logged", deadline: .seconds(30)) {
                access = (try? h.logLines("access.log")) ?? []
                audit = (try? h.logLines("audit.log")) ?? []
                return access.filter { string($0, "userAgent")?.hasPrefix("kubectl") == true }.count >= 2
                    && audit.contains { string($0, "verb") == "watch" }
            }
            let allowed = try #require(access.first { string($0, "path") == "/api/v1/namespaces/demo/services/web" && int($0, "status") == 200 })
            #expect(string(allowed, "method") == "GET" && string(allowed, "peer") == peer && string(allowed, "protocol") == "HTTP/2.0")
            #expect(string(allowed, "userAgent")?.hasPrefix("curl/") == true)
            #expect(string(allowed, "remote")?.hasPrefix("127.0.0.1:") == true)
            #expect((int(allowed, "bytes") ?? 0) > 100 && allowed["duration"] != nil && string(allowed, "time")?.hasSuffix("Z") == true)
            #expect(access.contains { string($0, "path") == "/api/v1/namespaces/demo/services/web" && string($0, "protocol") == "HTTP/1.1" })

            let allowedAudit = try #require(audit.first { string($0, "verb") == "get" && string($0, "name") == "web" })
            #expect(string(allowedAudit, "decision") == "allow" && string(allowedAudit, "peer") == peer)
            #expect(string(allowedAudit, "resource") == "services" && string(allowedAudit, "namespace") == "demo")
            #expect(int(allowedAudit, "status") == 200 && (int(allowedAudit, "bytes") ?? 0) > 100)
            #expect(string(allowedAudit, "reason")?.hasPrefix("allowed by ") == true, "\(allowedAudit.serialized())")

            let deniedDelete = try #require(audit.first { string($0, "verb") == "delete" })
            #expect(string(deniedDelete, "decision") == "deny" && int(deniedDelete, "status") == 403)
            #expect(string(deniedDelete, "resource") == "services" && string(deniedDelete, "name") == "web")
            #expect(string(deniedDelete, "reason") == "method DELETE on a read-only proxy")

            let denied401 = try #require(audit.first { int($0, "status") == 401 })
            #expect(string(denied401, "decision") == "deny" && string(denied401, "peer") == "")
            #expect(string(denied401, "resource") == "services" && string(denied401, "verb") == "list")
            #expect(string(denied401, "reason")?.isEmpty == false)

            let policyDenied = try #require(audit.first { string($0, "resource") == "configmaps" })
            #expect(string(policyDenied, "peer") == peer && string(policyDenied, "decision") == "deny")

            // The watch ended because its client left before the response ended.
            let watchAudit = try #require(audit.first { string($0, "verb") == "watch" })
            #expect(int(watchAudit, "status") == 200)

            // No credential anywhere in either log.
            let raw = try String(contentsOf: h.directory.appendingPathComponent("access.log"), encoding: .utf8)
                + String(contentsOf: h.directory.appendingPathComponent("audit.log"), encoding: .utf8)
            let signature = String(h.peerToken.split(separator: ".").last ?? "")
            for secret in [h.peerToken, signature, proxySAToken, "Bearer"] {
                #expect(!raw.lowercased().contains(secret.lowercased()), "a log contains \(secret.prefix(12))…")
            }
        }
        h.removeLogs()
        await h.stop()
    }

    @Test("/readyz on both listeners: 503 within a bound once the upstream stops, 200 again once it is back")
    func readiness() async throws {
        let h = try await ProxyHarness.startWithOperations()
        var restarted: FakeAPIServer?
        var upstreamStopped = false
        do {
            await eventually("ready", deadline: .seconds(30)) { (try? await h.admin("/readyz"))?.code == 200 }
            #expect(try await h.admin("/readyz").body == "ok")
            let verbose = try await h.admin("/readyz?verbose")
            #expect(verbose.body == "[+]peers ok\n[+]policy ok\n[+]upstream ok\nreadyz check passed\n", "\(verbose)")
            let mainListener = try await h.curl("/readyz?verbose", token: nil)
            #expect(mainListener.code == 200 && mainListener.body.contains("[+]upstream ok"), "\(mainListener)")
            let health = try await h.admin("/healthz")
            #expect(health.code == 200 && health.body == "ok")
            #expect(try await h.admin("/nothing-here").code == 404)
            // /metrics is only on the admin listener; on the main one it is an API path, and needs a token.
            #expect(try await h.curl("/metrics", token: nil).code == 401)

            let port = h.upstream.port
            let certificates = h.upstream.certificates
            upstreamStopped = true
            try await h.upstream.shutdown()
            let stopped = ContinuousClock.now
            await eventually("not ready after the upstream stopped", deadline: .seconds(30)) { (try? await h.admin("/readyz"))?.code == 503 }
            let notReadyAfter = ContinuousClock.now - stopped
            // Bound: a probe period (200 ms) plus its timeout, with room for a loaded machine.
            #expect(notReadyAfter < .seconds(10), "took \(notReadyAfter)")
            let failing = try await h.admin("/readyz")
            #expect(failing.body.contains("[-]upstream failed: ") && failing.body.hasSuffix("readyz check failed\n"), "\(failing)")
            let failingMain = try await h.curl("/readyz", token: nil)
            #expect(failingMain.code == 503 && failingMain.body.contains("[-]upstream failed: "), "\(failingMain)")

            var configuration = FakeAPIServer.Configuration(tokens: [proxySAToken: "system:serviceaccount:isthmus:proxy"])
            configuration.port = port
            configuration.certificates = certificates
            configuration.threads = 1
            restarted = try await FakeAPIServer.start(configuration)
            await eventually("ready again once the upstream is back", deadline: .seconds(30)) { (try? await h.admin("/readyz"))?.code == 200 }
            #expect(try await h.curl("/readyz", token: nil).code == 200)
        }
        // Not h.stop(): the first upstream is already shut down, and a second
        // shutdown of its event loops would never complete.
        try? await h.proxy.shutdown()
        if !upstreamStopped { try? await h.upstream.shutdown() }
        try? await restarted?.shutdown()
        h.removeLogs()
        try? FileManager.default.removeItem(at: h.directory)
    }

    @Test("an upstream 401 to the proxy's own token is a 502 naming the proxy's credentials, counted and logged, not the peer's 401")
    func proxyCredentialsRejected() async throws {
        let h = try await ProxyHarness.startWithOperations(upstreamTokens: ["some-other-token": "someone"])
        do {
            let answer = try await h.curl("/api/v1/namespaces/demo/services/web", token: h.peerToken)
            #expect(answer.code == 502, "\(answer)")
            #expect(answer.body == #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the API server rejected the proxy's credentials","reason":"InternalError","details":{},"code":502}"# + "\n", "\(answer)")
            // The upstream did see the request, and refused it.
            #expect(h.upstream.recentRequests.contains { $0.uri == "/api/v1/namespaces/demo/services/web" && $0.statusCode == 401 })
            let kubectl = try await h.kubectl("get", "svc", "-n", "demo")
            #expect(kubectl.status != 0)
            // client-go's discovery shows no Status message for a 5xx; what matters is
            // that the peer is not told to log in again (its answer to a 401).
            #expect(kubectl.stderr.contains("Error from server (InternalError)"), "\(kubectl)")
            #expect(!kubectl.stderr.contains("must be logged in") && !kubectl.stderr.contains("Unauthorized"), "\(kubectl)")

            let m = try await h.scrape()
            #expect(m[#"isthmus_proxy_upstream_failures_total{kind="credentialsRejected"}"#] ?? 0 >= 2)
            #expect(m[#"isthmus_proxy_requests_total{peer="\#(testPeerUUID)",verb="get",resource="services",code="502"}"#] == 1)
            await eventually("/readyz names the rejected credentials", deadline: .seconds(30)) {
                (try? await h.admin("/readyz?verbose"))?.body.contains(
                    "[-]upstream failed: the API server rejected the proxy's credentials (401)") == true
            }
            var audit: [JSON] = []
            await eventually("the 502 is audited", deadline: .seconds(30)) {
                audit = (try? h.logLines("audit.log")) ?? []
                return audit.contains { int($0, "status") == 502 }
            }
            let line = try #require(audit.first { int($0, "status") == 502 })
            #expect(string(line, "decision") == "allow")
            #expect(string(line, "error")?.contains("credentialsRejected") == true, "\(line.serialized())")
        }
        h.removeLogs()
        await h.stop()
    }
}
