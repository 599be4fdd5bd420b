import Foundation
import IsthmusFakeAPIServer
import IsthmusProxy
import Testing

@Suite("Proxy: upstream faults reach the client as Statuses", .serialized)
struct ProxyUpstreamFaultTests {
    @Test("an upstream 500, 503 or 429 is relayed as it is: code, Status body, Retry-After; for gets and watches, on both protocols",
          arguments: [500, 503, 429])
    func upstreamErrorsRelayed(code: Int) async throws {
        let h = try await ProxyHarness.start()
        do {
            let upstreamCA = h.directory.appendingPathComponent("upstream-ca.crt")
            try (h.upstream.caCertificatePEM ?? "").write(to: upstreamCA, atomically: true, encoding: .utf8)
            var faults = FaultInjection()
            faults.errorFraction = 1
            faults.errorStatusCode = code
            h.upstream.setFaults(faults)

            for path in ["/api/v1/namespaces/demo/services", "/api/v1/namespaces/demo/services?watch=1"] {
                // What the upstream itself answers, asked directly with the proxy's credentials.
                let direct = try await h.run(ProxyHarness.curlPath, [
                    "-sS", "-D", "-", "--cacert", upstreamCA.path, "-H", "Authorization: Bearer \(proxySAToken)",
                    h.upstream.url + path])
                let directBody = String(direct.stdout[direct.stdout.range(of: "\r\n\r\n")!.upperBound...])
                #expect(direct.stdout.hasPrefix("HTTP/2 \(code)"), "\(direct)")
                #expect(directBody.contains(#""code":\#(code)"#), "\(direct)")

                for http1 in [false, true] {
                    let relayed = try await curlWithHeaders(h, path, http1: http1, token: h.peerToken)
                    let on = "\(path) over \(http1 ? "HTTP/1.1" : "HTTP/2")"
                    #expect(relayed.code == code, "\(on): \(relayed)")
                    #expect(relayed.body == directBody, "\(on): \(relayed)")
                    #expect(relayed.headers["content-type"] == "application/json", "\(on): \(relayed)")
                    if code == 429 { #expect(relayed.headers["retry-after"] == "1", "\(on): \(relayed)") }
                }
            }
            // Each path was asked directly once and through the proxy twice, and the
            // upstream answered all of them: the relayed Status is the upstream's own.
            let served = h.upstream.recentRequests.filter { $0.uri.hasPrefix("/api/v1/namespaces/demo/services") }
            #expect(served.count == 2 * 3, "\(served.map { ($0.uri, $0.statusCode) })")
            #expect(served.allSatisfy { $0.statusCode == code })
        }
        await h.stop()
    }

    @Test("an upstream that was serving and went away: the next request is a 503 Status, promptly")
    func upstreamWentAway() async throws {
        let h = try await ProxyHarness.start()
        do {
            // A warm pool: connections to the upstream are open.
            let first = try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken)
            #expect(first.code == 200, "\(first)")
            try await h.upstream.shutdown()
            for http1 in [false, true] {
                let started = ContinuousClock.now
                let result = try await h.curl("/api/v1/namespaces/demo/services", http1: http1, token: h.peerToken)
                let elapsed = ContinuousClock.now - started
                #expect(result.code == 503, "\(result)")
                #expect(result.body.contains(#""reason":"ServiceUnavailable""#) && result.body.contains(#""code":503"#), "\(result)")
                // Connection refused is immediate; well inside the 5 s connect bound even on a loaded machine.
                #expect(elapsed < .seconds(5), "503 after \(elapsed)")
            }
        }
        // Not `h.stop()`: a second shutdown of the upstream would wait forever
        // on its stopped event loops.
        try? await h.proxy.shutdown()
        try? FileManager.default.removeItem(at: h.directory)
    }

    @Test("an upstream slower than the response-header bound: 504 Status after the bound, not much later, for a get and a watch")
    func slowUpstreamBound() async throws {
        let bound = Duration.seconds(1)
        let h = try await ProxyHarness.start(configure: { $0.upstream.responseHeaderTimeout = bound })
        do {
            var faults = FaultInjection()
            faults.responseDelay = .seconds(30)
            h.upstream.setFaults(faults)
            for path in ["/api/v1/namespaces/demo/services", "/api/v1/namespaces/demo/services?watch=1"] {
                let started = ContinuousClock.now
                let result = try await h.curl(path, token: h.peerToken)
                let elapsed = ContinuousClock.now - started
                print("slow upstream: \(path) answered \(result.code) after \(elapsed) (bound \(bound))")
                #expect(result.code == 504, "\(result)")
                #expect(result.body.contains(#""reason":"Timeout""#) && result.body.contains(#""code":504"#), "\(result)")
                #expect(elapsed >= bound, "504 before the bound: \(elapsed)")
                // curl's own start-up and TLS handshake are in `elapsed` too.
                #expect(elapsed < bound + .seconds(3), "504 long after the bound: \(elapsed)")
            }
        }
        await h.stop()
    }
}
