import Foundation
import IsthmusFakeAPIServer
import IsthmusProxy
import IsthmusTestSupport
import Testing

/// Per-peer fairness through the real stack: curl (HTTP/2 and HTTP/1.1, TLS)
/// → proxy → fake API server that holds each response, so requests pile up.
@Suite("Proxy: fair to every peer (bounded in flight, per-peer queues, rate limits)", .serialized)
struct ProxyFairnessTests {
    private static let otherPeer = "3c1f8a5e-9b2d-4f6a-8e7c-1d2b3a4c5e6f"

    private func delay(_ h: ProxyHarness, _ duration: Duration?) {
        var faults = FaultInjection()
        faults.responseDelay = duration
        h.upstream.setFaults(faults)
    }

    /// `count` GETs of `path` at once from one curl (`--parallel`): each one's
    /// status and Retry-After.
    private func flood(_ h: ProxyHarness, _ path: String, count: Int, token: String) -> (Process, Pipe) {
        var args = ["--parallel", "--parallel-immediate", "--parallel-max", String(count),
                    "-w", "%{http_code} %header{retry-after}\\n"]
        args += h.curlArguments(path, http1: false, token: token)
        let url = args.removeLast()
        for _ in 0..<count { args += ["-o", "/dev/null", url] }
        let (process, stdout, _) = h.process(ProxyHarness.curlPath, args)
        return (process, stdout)
    }

    private func outcomes(_ process: Process, _ stdout: Pipe) async -> [(code: Int, retryAfter: String)] {
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        await eventually("the flood's curl ended", deadline: .seconds(60)) { !process.isRunning }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            let parts = line.split(separator: " ", maxSplits: 1)
            return (Int(parts.first ?? "") ?? -1, parts.count > 1 ? String(parts[1]) : "")
        }
    }

    private func metrics(_ h: ProxyHarness) async -> String {
        (try? await h.admin("/metrics").body) ?? ""
    }

    @Test("a flooding peer is held to the in-flight bound and its queue (429 with Retry-After beyond); another peer is served meanwhile")
    func floodAndAQuietPeer() async throws {
        let h = try await ProxyHarness.start(configure: {
            $0.shortRequestLimits = ShortRequestLimits(maxInFlight: 4, maxQueuedPerPeer: 4, maxQueueWait: .seconds(20))
            $0.admin = AdminListenerConfiguration(host: "127.0.0.1", port: 0)
        })
        do {
            let quietToken = try h.trustSecondPeer(uuid: Self.otherPeer)
            // Each held for 3 s: the 24 requests (24 TLS handshakes when curl opens a
            // connection each) must all arrive while the first four are held, even on a
            // loaded 2-core CI machine, or the bound is never seen full (800 ms was not).
            delay(h, .seconds(3))
            h.upstream.resetPeakShortRequestsInFlight()
            let (process, stdout) = flood(h, "/api/v1/namespaces/demo/services", count: 24, token: h.peerToken)
            try process.run()
            await eventually("the flood fills the bound upstream", deadline: .seconds(30)) { h.upstream.shortRequestsInFlight.now >= 4 }
            // Every slot is the flooder's; the quiet peer's request takes the next one that frees.
            let quiet = try await h.curl("/api/v1/namespaces/demo/services/web", http1: true, token: quietToken)
            #expect(quiet.code == 200, "\(quiet)")
            let results = await outcomes(process, stdout)
            #expect(results.count == 24, "\(results)")
            let refused = results.filter { $0.code == 429 }
            // 4 in flight + 4 queued at most at any moment: the rest of a burst of 24 is refused.
            #expect(refused.count >= 8 && results.filter { $0.code == 200 }.count + refused.count == 24, "\(results)")
            #expect(refused.allSatisfy { $0.retryAfter == "1" }, "\(refused)")
            #expect(h.upstream.shortRequestsInFlight.peak <= 4, "\(h.upstream.shortRequestsInFlight)")
            #expect(h.proxy.value(h.proxy.metrics.throttled, [testPeerUUID, "queue_full"]) == Double(refused.count))
            for reason in ["rate_limit", "queue_full", "queue_timeout"] {
                #expect(h.proxy.value(h.proxy.metrics.throttled, [Self.otherPeer, reason]) == 0)
            }
            #expect(h.upstream.shortRequestsInFlight.now == 0, "\(h.upstream.shortRequestsInFlight)")
            // The refusal is the API server's own shape, so client-go backs off and retries.
            // (After the active window, so the quiet peer no longer holds a share of its own.)
            try await Task.sleep(for: .milliseconds(1500))
            // Long enough that a loaded machine still sees the bound and the queue full before the first ends.
            delay(h, .seconds(10))
            let (holding, held) = flood(h, "/api/v1/namespaces/demo/services?limit=1", count: 8, token: h.peerToken)
            try holding.run()
            // /metrics shows it: 4 in flight and 4 queued for the flooding peer.
            await eventually("the bound and the queue are full", deadline: .seconds(30)) {
                let text = await metrics(h)
                return text.contains("isthmus_proxy_short_requests_in_flight{peer=\"\(testPeerUUID)\"} 4.0\n")
                    && text.contains("isthmus_proxy_short_requests_queued{peer=\"\(testPeerUUID)\"} 4.0\n")
            }
            #expect(await metrics(h).contains("isthmus_proxy_short_requests_in_flight_limit 4.0\n"))
            let beyond = try await h.run(ProxyHarness.curlPath, ["-i"] + h.curlArguments("/api/v1/namespaces/demo/services", http1: true, token: h.peerToken)).stdout
            #expect(beyond.hasPrefix("HTTP/1.1 429") && beyond.contains(#""reason":"TooManyRequests""#)
                    && beyond.contains("too many requests of this peer are waiting"), "\(beyond)")
            #expect(beyond.lowercased().contains("retry-after: 1"), "\(beyond)")
            delay(h, nil)
            _ = await outcomes(holding, held)
            #expect(await metrics(h).contains(
                "isthmus_proxy_requests_throttled_total{peer=\"\(testPeerUUID)\",reason=\"queue_full\"} \(refused.count + 1)\n"))
        }
        await h.stop()
    }

    @Test("a request that waits longer than the queue wait gets 429; one whose client leaves while queued never goes upstream")
    func queueWaitAndCancellation() async throws {
        let h = try await ProxyHarness.start(configure: {
            $0.shortRequestLimits = ShortRequestLimits(maxInFlight: 1, maxQueuedPerPeer: 4, maxQueueWait: .milliseconds(400))
        })
        do {
            delay(h, .milliseconds(1500))
            let (process, stdout) = flood(h, "/api/v1/namespaces/demo/services/web", count: 2, token: h.peerToken)
            try process.run()
            let results = await outcomes(process, stdout).map(\.code).sorted()
            #expect(results == [200, 429], "\(results)")
            #expect(h.proxy.value(h.proxy.metrics.throttled, [testPeerUUID, "queue_timeout"]) == 1)

            delay(h, .milliseconds(1000))
            h.upstream.clearRecentRequests()
            let (holding, held) = flood(h, "/api/v1/namespaces/demo/services/web", count: 1, token: h.peerToken)
            try holding.run()
            await eventually("the one slot is taken", deadline: .seconds(30)) { h.upstream.shortRequestsInFlight.now == 1 }
            // This client gives up while its request waits for the slot.
            let leaving = try await h.run(ProxyHarness.curlPath, ["--max-time", "0.3", "-o", "/dev/null"]
                                          + h.curlArguments("/api/v1/namespaces/demo/services/api", http1: false, token: h.peerToken))
            #expect(leaving.status != 0, "\(leaving)")
            #expect(await outcomes(holding, held).map(\.code) == [200])
            delay(h, nil)
            // Its place was given back: the slot is free for the next request, and it never reached the API server.
            #expect(try await h.curl("/api/v1/namespaces/demo/services/db", token: h.peerToken).code == 200)
            #expect(!h.upstream.recentRequests.contains { $0.uri.hasSuffix("/services/api") },
                    "\(h.upstream.recentRequests.map(\.uri))")
        }
        await h.stop()
    }

    @Test("a peer over its rate gets 429 rate_limit with Retry-After, watches included; a peer with its own rate is not held back")
    func rateLimit() async throws {
        let h = try await ProxyHarness.start(configure: {
            $0.rateLimits = PeerRateLimits(everyPeer: RequestRate(perSecond: 0.1, burst: 2),
                                           byPeer: [Self.otherPeer: RequestRate(perSecond: 100, burst: 100)])
        })
        do {
            let otherToken = try h.trustSecondPeer(uuid: Self.otherPeer)
            for _ in 0..<2 { #expect(try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken).code == 200) }
            let asked = ContinuousClock.now
            let third = try await h.run(ProxyHarness.curlPath, ["-i"] + h.curlArguments("/api/v1/namespaces/demo/services", http1: false, token: h.peerToken)).stdout
            // Held before it is sent, so a client that ignores Retry-After cannot spin on 429s.
            #expect(ContinuousClock.now - asked >= ShortRequestLimits().refusalDelay)
            #expect(third.hasPrefix("HTTP/2 429") && third.contains("more requests than its rate limit allows"), "\(third)")
            let retryAfter = third.lowercased().split(separator: "\r\n").first { $0.hasPrefix("retry-after: ") }.flatMap { Int($0.dropFirst(13)) }
            // 0.1/s: the next token is ten seconds after the first request, less what the three took
            // (seconds on a loaded machine running the whole suite), never the 1 s of the other 429s.
            #expect(retryAfter.map { (5...10).contains($0) } == true, "0.1/s: the next token is about ten seconds away: \(third)")
            let watch = try await h.curl("/api/v1/namespaces/demo/services?watch=1&timeoutSeconds=1", token: h.peerToken)
            #expect(watch.code == 429, "\(watch)")
            #expect(h.proxy.value(h.proxy.metrics.throttled, [testPeerUUID, "rate_limit"]) == 2)
            for _ in 0..<10 { #expect(try await h.curl("/api/v1/namespaces/demo/services", token: otherToken).code == 200) }
            #expect(h.proxy.value(h.proxy.metrics.throttled, [Self.otherPeer, "rate_limit"]) == 0)
        }
        await h.stop()
    }
}
