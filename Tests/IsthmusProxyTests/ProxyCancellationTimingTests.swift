import Foundation
import IsthmusProxy
import IsthmusTestSupport
import NIOPosix
import Testing

/// How a client leaves a watch it has open.
enum WatchDeparture: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// HTTP/1.1: the client closes its connection (TLS close_notify, then FIN).
    case http1ConnectionClose = "HTTP/1.1 connection close"
    /// HTTP/2: the client resets the watch's stream (RST_STREAM); the connection stays.
    case http2StreamReset = "HTTP/2 RST_STREAM"
    /// HTTP/2: the client closes the whole connection.
    case http2ConnectionClose = "HTTP/2 connection close"
    /// A real client killed mid-watch (SIGKILL): the kernel closes its socket.
    case kubectlKilled = "kubectl killed (HTTP/2)"

    var testDescription: String { rawValue }
}

@Suite("Proxy: a client that leaves mid-watch closes the upstream watch within a second", .serialized)
struct ProxyCancellationTimingTests {
    @Test("the upstream sees its watch closed within 1 s of the client leaving", arguments: WatchDeparture.allCases)
    func upstreamWatchClosedWithinASecond(departure: WatchDeparture) async throws {
        let h = try await ProxyHarness.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The best of up to three attempts must be within 1 s: on a shared 2-core
        // machine running the whole suite, one attempt can lose its CPU for a while,
        // but a proxy that does not cancel never gets under 1 s in any attempt.
        var attempts = 0
        var timings: [Duration?] = []
        while attempts < 3 {
            attempts += 1
            let target = "/api/v1/namespaces/demo/services?watch=1"
            let leave: () async -> Void
            switch departure {
            case .kubectlKilled:
                let (kubectl, _, _) = h.process(ProxyHarness.kubectlPath, h.kubectlArguments(["get", "svc", "-n", "demo", "-w"]))
                try kubectl.run()
                leave = { await h.kill(kubectl) }
            case .http1ConnectionClose, .http2StreamReset, .http2ConnectionClose:
                let client = try await WatchClient.open(
                    group: group, port: h.proxy.port, caPEM: h.proxy.certificates.caCertificatePEM,
                    http2: departure != .http1ConnectionClose, target: target, token: h.peerToken)
                await eventually("the client received the watch's first events", deadline: .seconds(30)) {
                    client.received.withLockedValue { $0.head?.status == .ok && $0.tail(4096).contains(#""type":"ADDED""#) }
                }
                // Closing an open HTTP/2 stream channel sends RST_STREAM (the close itself
                // then fails with StreamClosed(CANCEL), which is expected).
                let channel = departure == .http2StreamReset ? client.stream : client.connection
                leave = { try? await channel.close() }
            }
            await eventually("the watch is open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 1 }

            let left = ContinuousClock.now
            await leave()
            let elapsed = await timeUntil(from: left, deadline: .seconds(10)) { h.upstream.openWatchCount == 0 }
            print("cancellation (\(departure.rawValue)), attempt \(attempts): upstream watch closed after \(elapsed.map { "\($0)" } ?? "more than 10 s")")
            timings.append(elapsed)
            if let elapsed, elapsed <= .seconds(1) { break }
            await eventually("the previous watch is gone upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        }
        #expect(timings.contains { $0 != nil && $0! <= .seconds(1) },
                "\(departure.rawValue): upstream watch closed after \(timings.map { $0.map { "\($0)" } ?? "more than 10 s" })")
        #expect(h.proxy.statistics.upstreamCancelledByClient == attempts)
        try? await group.shutdownGracefully()
        await h.stop()
    }
}
