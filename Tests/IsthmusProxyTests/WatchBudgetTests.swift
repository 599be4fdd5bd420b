import Foundation
import IsthmusPolicy
import IsthmusProxy
import IsthmusTestSupport
import IsthmusTrust
import Testing

@Suite("Watch limits: explicit, in total and per peer")
struct WatchBudgetTests {
    @Test("a peer at its bound is refused as such; the total bounds every peer; a release makes room")
    func bounds() {
        var budget = WatchBudget(limits: .init(total: 3, perPeer: 2))
        #expect(budget.acquire(peer: "a") == nil)
        #expect(budget.acquire(peer: "a") == nil)
        #expect(budget.acquire(peer: "a") == .peer)
        #expect(budget.acquire(peer: "b") == nil)
        #expect(budget.acquire(peer: "b") == .total)
        #expect(budget.open == 3 && budget.openByPeer == ["a": 2, "b": 1])
        budget.release(peer: "a")
        #expect(budget.acquire(peer: "b") == nil)
        // A release never counted is ignored: the budget cannot go negative.
        budget.release(peer: "nobody")
        #expect(budget.open == 3)
        for _ in 0..<5 { budget.release(peer: "a"); budget.release(peer: "b") }
        #expect(budget.open == 0 && budget.openByPeer.isEmpty)
    }

    @Test("through the proxy: the watch beyond a limit is 429 TooManyRequests with Retry-After, counted by peer and reason; ended watches free their place")
    func throughTheProxy() async throws {
        let h = try await ProxyHarness.start(configure: { $0.watchLimits = .init(total: 3, perPeer: 2) })
        do {
            let otherUUID = "3c1f8a5e-9b2d-4f6a-8e7c-1d2b3a4c5e6f"
            let otherToken = try h.trustSecondPeer(uuid: otherUUID)

            let watch = "/api/v1/namespaces/demo/services?watch=1"
            var open: [Process] = []
            for _ in 0..<2 {
                let (p, _, _) = h.process(ProxyHarness.curlPath, ["-N", "-o", "/dev/null"] + h.curlArguments(watch, http1: false, token: h.peerToken))
                try p.run()
                open.append(p)
            }
            await eventually("two watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 2 }
            let third = try await h.run(ProxyHarness.curlPath, ["-i"] + h.curlArguments(watch, http1: true, token: h.peerToken)).stdout
            #expect(third.hasPrefix("HTTP/1.1 429") && third.contains(#""reason":"TooManyRequests""#) && third.contains("for this peer"), "\(third)")
            #expect(third.lowercased().contains("retry-after: 1"), "\(third)")

            let (p, _, _) = h.process(ProxyHarness.curlPath, ["-N", "-o", "/dev/null"] + h.curlArguments(watch, http1: false, token: otherToken))
            try p.run()
            open.append(p)
            await eventually("three watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 3 }
            let beyondTotal = try await h.curl(watch, token: otherToken)
            #expect(beyondTotal.code == 429 && beyondTotal.body.contains("through this proxy"), "\(beyondTotal)")
            // Short requests are not watches: never refused by these limits.
            #expect(try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken).code == 200)
            #expect(h.proxy.value(h.proxy.metrics.watchesRefused, [testPeerUUID, "peer"]) == 1)
            #expect(h.proxy.value(h.proxy.metrics.watchesRefused, [otherUUID, "total"]) == 1)

            await h.kill(open[0])
            await eventually("the ended watch freed its place", deadline: .seconds(30)) {
                (try? await h.curl(watch + "&timeoutSeconds=1", token: h.peerToken).code) == 200
            }
            for process in open.dropFirst() { await h.kill(process) }
        }
        await h.stop()
    }
}
