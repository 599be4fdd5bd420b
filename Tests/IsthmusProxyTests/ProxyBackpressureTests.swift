import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTestSupport
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Testing

/// What a test client has received so far.
struct ReceivedResponse: Sendable {
    var head: HTTPResponseHead?
    var body: [UInt8] = []
    var ended = false

    func tail(_ count: Int) -> String { String(decoding: body.suffix(count), as: UTF8.self) }
}

/// An HTTP/1.1 client whose reading the test switches off and on (`autoRead`).
final class CollectingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let received: NIOLockedValueBox<ReceivedResponse>

    init(received: NIOLockedValueBox<ReceivedResponse>) {
        self.received = received
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): received.withLockedValue { $0.head = head }
        case .body(let buffer): received.withLockedValue { $0.body.append(contentsOf: buffer.readableBytesView) }
        case .end: received.withLockedValue { $0.ended = true }
        }
    }
}

@Suite("Proxy: backpressure", .serialized)
struct ProxyBackpressureTests {
    @Test("a client that stops reading a watch makes the proxy stop reading upstream; when it reads again every event arrives")
    func slowClient() async throws {
        let h = try await ProxyHarness.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(h.proxy.certificates.caCertificatePEM.utf8)))
            tls.applicationProtocols = ["http/1.1"]
            // Do not wait for the proxy's close_notify at the end: during a
            // response NIO's HTTP/1.1 pipelining handler does not read, so it
            // never sees ours (kube clients close TCP right after theirs).
            tls.shutdownTimeout = .milliseconds(100)
            let sslContext = try NIOSSLContext(configuration: tls)
            let received = NIOLockedValueBox(ReceivedResponse())
            let channel = try await ClientBootstrap(group: group)
                // A small fixed receive buffer (no autotuning): what the kernel
                // holds for a stalled client stays small and known.
                .channelOption(.socketOption(.so_rcvbuf), value: 64 * 1024)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(CollectingHandler(received: received))
                    }
                }
                .connect(host: "127.0.0.1", port: h.proxy.port).get()
            var headers = HTTPHeaders()
            headers.add(name: "host", value: "127.0.0.1")
            headers.add(name: "authorization", value: "Bearer \(h.peerToken)")
            let target = "/api/v1/namespaces/demo/services?watch=1"
            channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)),
                          promise: nil)
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
            await eventually("the watch started with its ADDED events", deadline: .seconds(30)) {
                received.withLockedValue { $0.head?.status == .ok && $0.tail(4096).contains(#""type":"ADDED""#) }
            }

            // The client stops reading; the upstream pushes ~14 MB of events.
            try await channel.setOption(ChannelOptions.autoRead, value: false)
            let blob = String(repeating: "x", count: 1_200_000)
            func service(_ name: String, blob: String) -> JSON {
                .object([("metadata", .object([("name", .string(name)), ("namespace", .string("demo")),
                                               ("annotations", .object([("blob", .string(blob))]))]))])
            }
            for step in 0..<12 {
                try h.upstream.create(resource: "services", object: service("big-\(step)", blob: blob))
            }
            try h.upstream.create(resource: "services", object: service("last-step", blob: ""))
            await eventually("the proxy held an upstream read for the stalled client", deadline: .seconds(30)) {
                h.proxy.statistics.upstreamReadsHeld > 0
            }
            #expect(h.upstream.openWatchCount == 1, "the stalled watch stays open")
            // Without backpressure the proxy would keep reading and queue all
            // ~14 MB for the client; with it, it stops after what the sockets and
            // NIO's write buffer hold (the proxy's send buffer is at most 4 MB here).
            // Given time to misbehave, it must not have:
            try await Task.sleep(for: .milliseconds(500))
            let relayedWhileStalled = h.proxy.statistics.bytesRelayed
            #expect(relayedWhileStalled < 10_000_000, "relayed \(relayedWhileStalled) bytes to a client that reads nothing")

            // Reading again drains everything, in order, to the last event.
            try await channel.setOption(ChannelOptions.autoRead, value: true)
            channel.read()
            await eventually("the client received the last event", deadline: .seconds(30)) {
                received.withLockedValue { $0.tail(4096).contains("last-step") }
            }
            let text = received.withLockedValue { String(decoding: $0.body, as: UTF8.self) }
            let added = text.components(separatedBy: #"{"type":"ADDED""#).count - 1
            #expect(added == 3 + 13)
            try? await channel.close()
        }
        try? await group.shutdownGracefully()
        await h.stop()
    }
}

@Suite("Proxy: HTTP/2 stream reset", .serialized)
struct ProxyStreamResetTests {
    @Test("an HTTP/2 client that resets its watch stream (RST_STREAM) closes the upstream watch; its connection keeps working")
    func resetStream() async throws {
        let h = try await ProxyHarness.start()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(h.proxy.certificates.caCertificatePEM.utf8)))
            tls.applicationProtocols = ["h2"]
            tls.shutdownTimeout = .milliseconds(100)
            let sslContext = try NIOSSLContext(configuration: tls)
            // The HTTP/2 handler goes in with the TLS handler: added after connect,
            // it could miss the server's SETTINGS if the handshake finished first.
            let multiplexerBox = NIOLockedValueBox<NIOHTTP2Handler.StreamMultiplexer?>(nil)
            let connection = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                        let multiplexer = try sync.configureHTTP2Pipeline(
                            mode: .client, connectionConfiguration: .init(), streamConfiguration: .init(),
                            inboundStreamInitializer: { $0.close() })
                        multiplexerBox.withLockedValue { $0 = multiplexer }
                    }
                }
                .connect(host: "127.0.0.1", port: h.proxy.port).get()
            let multiplexer = try #require(multiplexerBox.withLockedValue { $0 })

            func request(_ target: String) async throws -> (any Channel, NIOLockedValueBox<ReceivedResponse>) {
                let received = NIOLockedValueBox(ReceivedResponse())
                let stream = try await multiplexer.createStreamChannel { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                        try stream.pipeline.syncOperations.addHandler(CollectingHandler(received: received))
                    }
                }.get()
                var headers = HTTPHeaders()
                headers.add(name: "host", value: "127.0.0.1:\(h.proxy.port)")
                headers.add(name: "authorization", value: "Bearer \(h.peerToken)")
                stream.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)),
                             promise: nil)
                try await stream.writeAndFlush(HTTPClientRequestPart.end(nil))
                return (stream, received)
            }

            let (watch, watched) = try await request("/api/v1/namespaces/demo/services?watch=1")
            await eventually("the watch is open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 1 }
            await eventually("the client got the watch's head", deadline: .seconds(30)) { watched.withLockedValue { $0.head?.status == .ok } }
            // Closing an open HTTP/2 stream channel sends RST_STREAM; the TCP connection stays.
            try? await watch.close()  // fails with StreamClosed(CANCEL): the reset was sent
            await eventually("the upstream watch closed after the stream reset", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
            #expect(h.proxy.statistics.upstreamCancelledByClient == 1)

            let (_, listed) = try await request("/api/v1/namespaces/demo/services")
            await eventually("a new stream on the same connection is answered", deadline: .seconds(30)) { listed.withLockedValue { $0.ended } }
            #expect(listed.withLockedValue { $0.head?.status == .ok && $0.tail(100_000).contains(#""name":"web""#) })
            try? await connection.close()
        }
        try? await group.shutdownGracefully()
        await h.stop()
    }
}
