import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// One watch request over TLS from a SwiftNIO client, HTTP/1.1 or HTTP/2, for
/// tests that must control the client exactly: stop reading, reset the stream,
/// close the connection, at a moment of their choosing.
struct WatchClient {
    /// The TCP + TLS connection.
    let connection: any Channel
    /// The request's own channel: the HTTP/2 stream, or the connection on HTTP/1.1.
    let stream: any Channel
    let received: NIOLockedValueBox<ReceivedResponse>

    /// Connects to `127.0.0.1:port`, trusting `caPEM`, and sends `GET target`
    /// with `token`. A small fixed receive buffer (no autotuning) keeps what
    /// the kernel holds for a client that stops reading small and known.
    static func open(group: any EventLoopGroup, port: Int, caPEM: String, http2: Bool, target: String,
                     token: String, receiveBuffer: Int = 64 * 1024,
                     stopReadingAtHandshake: Bool = false) async throws -> WatchClient {
        // stopReadingAtHandshake: HTTP/1.1 stops reading once TLS is up, HTTP/2 opens
        // the request's stream not reading; either way before the response can flow.
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caPEM.utf8)))
        tls.applicationProtocols = [http2 ? "h2" : "http/1.1"]
        // Do not wait long for the server's close_notify when closing.
        tls.shutdownTimeout = .milliseconds(100)
        let sslContext = try NIOSSLContext(configuration: tls)
        let received = NIOLockedValueBox(ReceivedResponse())
        let multiplexerBox = NIOLockedValueBox<NIOHTTP2Handler.StreamMultiplexer?>(nil)
        let connection = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: nil))
                    if stopReadingAtHandshake && !http2 {
                        // Before the request is even sent, so however slow the test's
                        // own task is to call stopReading(), nothing is read meanwhile.
                        try sync.addHandler(StopReadingAtHandshake())
                    }
                    if http2 {
                        // With the TLS handler, so the server's SETTINGS cannot be missed.
                        let multiplexer = try sync.configureHTTP2Pipeline(
                            mode: .client, connectionConfiguration: .init(), streamConfiguration: .init(),
                            inboundStreamInitializer: { $0.close() })
                        multiplexerBox.withLockedValue { $0 = multiplexer }
                    } else {
                        try sync.addHTTPClientHandlers()
                        try sync.addHandler(CollectingHandler(received: received))
                    }
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var headers = HTTPHeaders()
        headers.add(name: "host", value: "127.0.0.1:\(port)")
        headers.add(name: "authorization", value: "Bearer \(token)")
        let head = HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: target, headers: headers))
        let stream: any Channel
        if let multiplexer = multiplexerBox.withLockedValue({ $0 }) {
            stream = try await multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    if stopReadingAtHandshake {
                        // The stream consumes nothing, so it grants the proxy no more
                        // flow-control window than its initial one.
                        try stream.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
                    }
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                    try stream.pipeline.syncOperations.addHandler(CollectingHandler(received: received))
                }
            }.get()
        } else {
            stream = connection
        }
        stream.write(head, promise: nil)
        try await stream.writeAndFlush(HTTPClientRequestPart.end(nil))
        return WatchClient(connection: connection, stream: stream, received: received)
    }

    /// Stops reading: from now on the client takes nothing more. On HTTP/2 the
    /// stream stops too, or its reads would keep pulling on the connection.
    func stopReading() async throws {
        try await stream.setOption(ChannelOptions.autoRead, value: false)
        try await connection.setOption(ChannelOptions.autoRead, value: false)
    }

    /// One read by hand while reading is stopped.
    func readOnce() {
        stream.read()
        if stream !== connection { connection.read() }
    }
}

/// Turns autoRead off the moment TLS is up (HTTP/1.1 only: an HTTP/2 client
/// must keep reading the connection's own frames).
final class StopReadingAtHandshake: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
        }
        context.fireUserInboundEventTriggered(event)
    }
}
