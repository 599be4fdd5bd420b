import Foundation
import IsthmusFakeAPIServer
import IsthmusHTTP
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// An upstream that answers the first request on each connection and then,
/// in the same flush, a second response nobody asked for: what a desynchronised
/// API server (or something in between) would do.
private final class StrayResponseHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let body = #"{"answer":"to \#(head.uri)"}"#
        let strayBody = #"{"answer":"stray"}"#
        // The stray response rides as bytes after the declared length (NIO's
        // server pipeline would not write two responses to one request).
        let stray = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: \(strayBody.utf8.count)\r\n\r\n" + strayBody
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(body.utf8.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body + stray)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

@Suite("Proxy: HTTP/1.1 keep-alive connections to the API server for short requests", .serialized)
struct UpstreamKeepAliveTests {
    @Test("gets and lists from many client connections (HTTP/1.1 and HTTP/2) reuse a few upstream connections; watches stay on HTTP/2")
    func reuse() async throws {
        let h = try await ProxyHarness.start(configure: { $0.readinessProbeInterval = .seconds(3600) })
        do {
            let acceptedBefore = h.upstream.connectionsAccepted
            for index in 0..<12 {
                let result = try await h.curl(index.isMultiple(of: 3) ? "/api/v1/namespaces/demo/services"
                                                                      : "/api/v1/namespaces/demo/services/web",
                                              http1: index.isMultiple(of: 2), token: h.peerToken)
                #expect(result.code == 200, "request \(index): \(result)")
            }
            let stats = try await h.proxy.upstreamStatistics()
            // One connection per event loop (two loops), plus the readiness probe's
            // first, which may still be starting; twelve without reuse.
            #expect(h.upstream.connectionsAccepted - acceptedBefore <= 3, "\(h.upstream.connectionsAccepted - acceptedBefore) connections")
            #expect(stats.reusedRequests >= 10, "\(stats)")
            let shortRequests = h.upstream.recentRequests.filter { $0.uri.hasPrefix("/api/v1/namespaces/demo/services") }
            #expect(shortRequests.count == 12 && shortRequests.allSatisfy { !$0.http2 && $0.statusCode == 200 })
            #expect(shortRequests.allSatisfy { $0.header("connection") == nil }, "keep-alive requests ask for no close")

            // A watch opens its own HTTP/2 connection, whatever the short requests use.
            let watch = try await h.run(ProxyHarness.curlPath, ["-N", "--max-time", "2"] + h.curlArguments(
                "/api/v1/namespaces/demo/services?watch=1&timeoutSeconds=1", http1: true, token: h.peerToken))
            #expect(watch.stdout.contains(#"{"type":"ADDED""#), "\(watch)")
            #expect(h.upstream.recentRequests.contains { $0.uri.contains("watch=1") && $0.http2 })
        }
        await h.stop()
    }

    @Test("a keep-alive connection the API server closed as the next request went out: that request is sent again on a new one, and answered")
    func serverClosesReusedConnection() async throws {
        let h = try await ProxyHarness.start(configure: { $0.readinessProbeInterval = .seconds(3600); $0.threads = 1 })
        do {
            _ = try h.upstream.create(resource: "secrets", object: .object([
                ("metadata", .object([("name", .string("gateway-cert")), ("namespace", .string("demo"))])),
                ("type", .string("kubernetes.io/tls")), ("data", .object([("tls.crt", .string("Y2VydA=="))])),
            ]))
            let first = try await h.curl("/api/v1/namespaces/demo/services/web", token: h.peerToken)
            #expect(first.code == 200, "\(first)")
            var faults = FaultInjection()
            faults.closeReusedConnections = true
            h.upstream.setFaults(faults)
            for path in ["/api/v1/namespaces/demo/services/db", "/api/v1/namespaces/demo/services",
                         "/api/v1/namespaces/demo/secrets/gateway-cert"] {
                let result = try await h.curl(path, token: h.peerToken)
                #expect(result.code == 200, "\(path): \(result)")
            }
            let dropped = h.upstream.recentRequests.filter { $0.statusCode == nil }
            #expect(dropped.count >= 3, "the fault dropped \(dropped.map(\.uri))")
            #expect(h.proxy.statistics.upstreamRequestsResent >= 2, "\(h.proxy.statistics)")

            // An API server that takes no new connection: a Status, not a loop.
            faults.refuseConnections = true
            h.upstream.setFaults(faults)
            let refused = try await h.curl("/api/v1/namespaces/demo/services/api", token: h.peerToken)
            #expect(refused.code == 503, "\(refused)")
            #expect(refused.body.contains(#""kind":"Status""#), "\(refused)")
        }
        await h.stop()
    }

    @Test("a client that leaves before its answer: the upstream connection is closed, never reused, so the next request gets its own answer")
    func cancelledClient() async throws {
        let h = try await ProxyHarness.start(configure: { $0.readinessProbeInterval = .seconds(3600); $0.threads = 1 })
        do {
            let warm = try await h.curl("/api/v1/namespaces/demo/services/api", token: h.peerToken)
            #expect(warm.code == 200)
            var faults = FaultInjection()
            faults.responseDelay = .milliseconds(1500)
            h.upstream.setFaults(faults)
            let leaving = try await h.run(ProxyHarness.curlPath, ["--max-time", "0.5"] + h.curlArguments(
                "/api/v1/namespaces/demo/services/web", http1: true, token: h.peerToken))
            #expect(leaving.status != 0, "curl should have timed out: \(leaving)")
            await eventually("the proxy cancelled the upstream request", deadline: .seconds(10)) {
                h.proxy.statistics.upstreamCancelledByClient == 1
            }
            h.upstream.setFaults(FaultInjection())
            // The delayed answer to `web` is still due on the old connection; it must not be this request's answer.
            let next = try await h.curl("/api/v1/namespaces/demo/services/db", token: h.peerToken)
            let nextBody = next.body.filter { !$0.isWhitespace }
            #expect(next.code == 200 && nextBody.contains(#""name":"db""#) && !nextBody.contains(#""name":"web""#), "\(next)")
            try? await Task.sleep(for: .milliseconds(1500))
            let after = try await h.curl("/api/v1/namespaces/demo/services/api", token: h.peerToken)
            #expect(after.code == 200 && after.body.filter { !$0.isWhitespace }.contains(#""name":"api""#), "\(after)")
        }
        await h.stop()
    }

    @Test("idle keep-alive connections are closed after the idle timeout")
    func idleTimeout() async throws {
        let h = try await ProxyHarness.start(configure: {
            $0.readinessProbeInterval = .seconds(3600)
            $0.upstream.idleConnectionTimeout = .milliseconds(300)
        })
        do {
            let result = try await h.curl("/api/v1/namespaces/demo/services/web", token: h.peerToken)
            #expect(result.code == 200)
            await eventually("the idle connection was closed", deadline: .seconds(10)) {
                ((try? await h.proxy.upstreamStatistics().idleClosed) ?? 0) >= 1
            }
            let again = try await h.curl("/api/v1/namespaces/demo/services/web", token: h.peerToken)
            #expect(again.code == 200, "a new connection after the idle one closed: \(again)")
        }
        await h.stop()
    }

    @Test("a response nobody asked for, arriving on an idle keep-alive connection, closes it instead of answering the next request")
    func strayResponse() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let certificates = try ServingCertificates.generate()
        let stray = try await HTTPServer.start(group: group, configuration: HTTPServerConfiguration(tls: certificates),
                                               makeHandler: { _ in StrayResponseHandler() })
        let h = try await ProxyHarness.start(configure: {
            $0.readinessProbeInterval = .seconds(3600)
            $0.threads = 1
            $0.upstream.url = "https://127.0.0.1:\(stray.port)"
            $0.upstream.caCertificatePEM = certificates.caCertificatePEM
        })
        do {
            for name in ["web", "db", "api"] {
                let result = try await h.curl("/api/v1/namespaces/demo/services/\(name)", http1: true, token: h.peerToken)
                #expect(result.code == 200, "\(result)")
                #expect(result.body.contains("to /api/v1/namespaces/demo/services/\(name)") && !result.body.contains("stray"),
                        "\(name) got another request's answer: \(result.body)")
            }
            #expect(try await h.proxy.upstreamStatistics().reusedRequests == 0)
        }
        await h.stop()
        try? await stray.close()
        try? await group.shutdownGracefully()
    }
}
