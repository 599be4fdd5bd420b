import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusProxy
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
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
            let target = "/api/v1/namespaces/demo/services?watch=1&fieldSelector=metadata.name%3Dweb"
            channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers)),
                          promise: nil)
            try await channel.writeAndFlush(HTTPClientRequestPart.end(nil))
            await eventually("the watch started with its ADDED event") {
                received.withLockedValue { $0.head?.status == .ok && $0.tail(4096).contains(#""type":"ADDED""#) }
            }

            // The client stops reading; the upstream pushes ~8 MB of events.
            try await channel.setOption(ChannelOptions.autoRead, value: false)
            let blob = String(repeating: "x", count: 100_000)
            for step in 0..<80 {
                try h.upstream.mergePatch(resource: "services", namespace: "demo", name: "web", patch: .object([
                    ("metadata", .object([("annotations", .object([("blob", .string(blob)), ("step", .string("\(step)"))]))])),
                ]))
            }
            try h.upstream.mergePatch(resource: "services", namespace: "demo", name: "web", patch: .object([
                ("metadata", .object([("annotations", .object([("blob", .string("")), ("step", .string("last-step"))]))])),
            ]))
            await eventually("the proxy held an upstream read for the stalled client") {
                h.proxy.statistics.upstreamReadsHeld > 0
            }
            #expect(h.upstream.openWatchCount == 1, "the stalled watch stays open")

            // Reading again drains everything, in order, to the last event.
            try await channel.setOption(ChannelOptions.autoRead, value: true)
            channel.read()
            await eventually("the client received the last event") {
                received.withLockedValue { $0.tail(2048).contains("last-step") }
            }
            let text = received.withLockedValue { String(decoding: $0.body, as: UTF8.self) }
            let modified = text.components(separatedBy: #"{"type":"MODIFIED""#).count - 1
            #expect(modified == 81)
            try? await channel.close()
        }
        try? await group.shutdownGracefully()
        await h.stop()
    }
}
