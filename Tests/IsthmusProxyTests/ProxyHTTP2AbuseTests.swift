import Foundation
import IsthmusFakeAPIServer
import IsthmusTestSupport
import Testing

private let repositoryRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)  // Tests/IsthmusProxyTests/ProxyHTTP2AbuseTests.swift
    return parts.joined(separator: "/")
}()

/// What the misbehaving client saw (Tests/tools/h2_misbehaving_client.py).
private struct AbuseOutcome: Decodable, CustomStringConvertible {
    var mode: String
    var sent: Int
    var goaway: Bool
    var goawayError: Int?
    var resets: Int
    var responses: Int
    var closed: Bool
    var description: String { "\(mode): sent \(sent), goaway \(goaway) (\(goawayError.map(String.init) ?? "-")), resets \(resets), responses \(responses), closed \(closed)" }
}

private let enhanceYourCalm = 11, protocolError = 1

/// Runs the client with the Python h2 package that ./scripts/test installs;
/// a missing one fails the test, naming the command that installs it.
private func misbehave(_ h: ProxyHarness, _ mode: String, _ count: Int, token: String?) async throws -> AbuseOutcome {
    let python = repositoryRoot + "/.build/h2-client-venv/bin/python"
    try #require(FileManager.default.isExecutableFile(atPath: python),
                 "no \(python): run ./scripts/test once (it installs the Python h2 package there)")
    let tokenFile = h.directory.appendingPathComponent("h2-token-\(UUID().uuidString)")
    try (token ?? "not-a-token").write(to: tokenFile, atomically: true, encoding: .utf8)
    let run = try await ChildProcess.run(python, [repositoryRoot + "/Tests/tools/h2_misbehaving_client.py", String(h.proxy.port),
                                                  h.proxyCA, tokenFile.path, mode, String(count)])
    #expect(run.status == 0, "\(run)")
    let line = try #require(run.stdout.split(separator: "\n").last.map(String.init), "\(run)")
    return try JSONDecoder().decode(AbuseOutcome.self, from: Data(line.utf8))
}

@Suite("Proxy: HTTP/2 abuse from a client is bounded (SwiftNIO HTTP/2's guards, tested with raw frames)", .serialized)
struct ProxyHTTP2AbuseTests {
    @Test("rapid reset (CVE-2023-44487): 10,000 HEADERS+RST_STREAM with a valid token end in GOAWAY ENHANCE_YOUR_CALM long before, never above the in-flight bound upstream")
    func rapidReset() async throws {
        let h = try await ProxyHarness.start(configure: { $0.shortRequestLimits.maxInFlight = 8 })
        do {
            // Held answers: only the bound keeps the reset streams from piling up at the API server.
            var faults = FaultInjection()
            faults.responseDelay = .milliseconds(200)
            h.upstream.setFaults(faults)
            h.upstream.clearRecentRequests()
            let outcome = try await misbehave(h, "rapid-reset", 10_000, token: h.peerToken)
            #expect(outcome.goaway && outcome.goawayError == enhanceYourCalm, "\(outcome)")
            #expect(outcome.sent < 10_000, "the connection must end before the client is done: \(outcome)")
            let forwarded = h.upstream.recentRequests.filter { $0.uri.hasPrefix("/api/v1/namespaces/demo/services") }.count
            #expect(forwarded < outcome.sent, "\(forwarded) upstream requests for \(outcome.sent) reset streams")
            #expect(h.upstream.shortRequestsInFlight.peak <= 8, "\(h.upstream.shortRequestsInFlight)")
            h.upstream.setFaults(FaultInjection())
            // Without a token, nothing reaches the upstream at all.
            h.upstream.clearRecentRequests()
            let anonymous = try await misbehave(h, "rapid-reset", 10_000, token: nil)
            #expect(anonymous.goaway && anonymous.goawayError == enhanceYourCalm, "\(anonymous)")
            #expect(!h.upstream.recentRequests.contains { $0.uri.hasPrefix("/api/") })
            // The proxy still serves everyone else.
            let after = try await h.curl("/api/v1/namespaces/demo/services", token: h.peerToken)
            #expect(after.code == 200, "\(after)")
        }
        await h.stop()
    }

    @Test("more concurrent streams than SETTINGS_MAX_CONCURRENT_STREAMS (100) end the connection")
    func tooManyStreams() async throws {
        let h = try await ProxyHarness.start()
        do {
            let outcome = try await misbehave(h, "streams", 150, token: h.peerToken)
            #expect(outcome.goaway && outcome.goawayError == protocolError, "\(outcome)")
            await eventually("the watches it opened are closed upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        }
        await h.stop()
    }

    @Test("a CONTINUATION flood, a PING flood and an oversized header list each end the connection")
    func floods() async throws {
        let h = try await ProxyHarness.start()
        do {
            let continuation = try await misbehave(h, "continuation", 10_000, token: h.peerToken)
            #expect(continuation.goaway && continuation.goawayError == enhanceYourCalm && continuation.sent < 10_000, "\(continuation)")
            let ping = try await misbehave(h, "ping-flood", 100_000, token: h.peerToken)
            #expect(ping.goaway && ping.goawayError == enhanceYourCalm && ping.sent < 100_000, "\(ping)")
            let headers = try await misbehave(h, "big-headers", 64 * 1024, token: h.peerToken)
            #expect(headers.goaway && headers.responses == 0, "\(headers)")
            let after = try await h.curl("/readyz", token: nil)
            #expect(after.code == 200, "\(after)")
        }
        await h.stop()
    }
}
