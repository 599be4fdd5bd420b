import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import Synchronization
import X509

/// How a server listens. Plain data, checked once at start.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind; `127.0.0.1` keeps dev and test servers off the network.
    public var host: String
    /// 0 picks a free port; read the bound one from `HTTPServer.port`.
    public var port: Int
    /// Serving certificate; nil serves cleartext HTTP/1.1, and HTTP/2 to
    /// clients that start with its preface (h2c with prior knowledge).
    public var tls: ServingCertificates?
    /// ALPN offers, most preferred first. kube clients negotiate h2 over TLS.
    public var applicationProtocols: [String]
    /// The oldest TLS version accepted: 1.2, as TLS 1.0 and 1.1 are deprecated (RFC 8996).
    public var minimumTLSVersion: TLSVersion = .tlsv12
    /// CA bundle (PEM) for client certificates. When set, the handshake asks
    /// for a certificate and refuses one that does not chain to this CA, but
    /// accepts a client that sends none: what such a client may do is the
    /// request handler's decision (read it with `clientCertificateDER`).
    public var clientCertificateCAPEM: String?
    /// SETTINGS_MAX_CONCURRENT_STREAMS offered to HTTP/2 clients.
    public var maximumConcurrentStreams = HTTP2AbuseGuards.maximumConcurrentStreams

    public init(host: String = "127.0.0.1", port: Int = 0, tls: ServingCertificates?,
                applicationProtocols: [String] = ["h2", "http/1.1"]) {
        self.host = host
        self.port = port
        self.tls = tls
        self.applicationProtocols = applicationProtocols
    }
}

/// What a connection was negotiated as; the request handler sees one request
/// stream either way (HTTP/2 streams are translated to HTTP/1-style parts).
public enum HTTPProtocolVersion: Sendable, Equatable {
    case http1_1, http2
}

/// A TCP listener with optional TLS + ALPN (h2, http/1.1). Each HTTP/1.1
/// connection and each HTTP/2 stream gets its own handler from `makeHandler`,
/// which reads `HTTPServerRequestPart` and writes `HTTPServerResponsePart`.
///
/// The proxy reuses this: its handlers differ, the bootstrap does not.
public final class HTTPServer: Sendable {
    public let channel: any Channel
    public let port: Int
    private let configuration: HTTPServerConfiguration
    /// Read once per new connection, so a replaced certificate serves new
    /// connections while open ones keep the one they were handshaken with.
    private let sslContext: SSLContextHolder

    private init(channel: any Channel, port: Int, configuration: HTTPServerConfiguration, sslContext: SSLContextHolder) {
        self.channel = channel
        self.port = port
        self.configuration = configuration
        self.sslContext = sslContext
    }

    /// The TLS context for `configuration`, after checking that the key belongs to the certificate.
    static func makeSSLContext(_ configuration: HTTPServerConfiguration, tls: ServingCertificates) throws -> NIOSSLContext {
        try tls.checkKeyMatchesCertificate()
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(tls.certificatePEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: Array(tls.privateKeyPEM.utf8), format: .pem)
        var tlsConfiguration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        tlsConfiguration.applicationProtocols = configuration.applicationProtocols
        tlsConfiguration.minimumTLSVersion = configuration.minimumTLSVersion
        if let clientCA = configuration.clientCertificateCAPEM {
            let roots = try NIOSSLCertificate.fromPEMBytes(Array(clientCA.utf8))
            guard !roots.isEmpty else { throw ServingCertificateError("the client CA file holds no certificate") }
            tlsConfiguration.trustRoots = .certificates(roots)
            tlsConfiguration.certificateVerification = .optionalVerification
        }
        return try NIOSSLContext(configuration: tlsConfiguration)
    }

    /// Serves `certificates` to connections accepted from now on. Throws (and
    /// keeps the current one) when the pair is unusable. No-op without TLS.
    public func replaceCertificates(_ certificates: ServingCertificates) throws {
        guard configuration.tls != nil else { return }
        let context = try Self.makeSSLContext(configuration, tls: certificates)
        sslContext.current = context
    }

    /// The DER client certificate of the connection a handler's `channel`
    /// belongs to (the connection itself for HTTP/1.1, its parent for an
    /// HTTP/2 stream), once its handshake verified it against
    /// ``HTTPServerConfiguration/clientCertificateCAPEM``; nil without one.
    /// Call on the channel's event loop.
    public static func clientCertificateDER(of channel: any Channel, version: HTTPProtocolVersion) -> [UInt8]? {
        // An HTTP/1.1 connection's parent is the listening socket, on another loop.
        guard let connection = version == .http2 ? channel.parent : channel else { return nil }
        guard let handler = try? connection.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
              let certificate = handler.peerCertificate else { return nil }
        return try? certificate.toDERBytes()
    }

    /// Binds and starts accepting. `acceptConnection` is asked for each new
    /// connection, before TLS (a `false` closes it at once: fault injection,
    /// limits; a test server may keep the channel to act on it later).
    public static func start(
        group: any EventLoopGroup,
        configuration: HTTPServerConfiguration,
        acceptConnection: @escaping @Sendable (any Channel) -> Bool = { _ in true },
        makeHandler: @escaping @Sendable (HTTPProtocolVersion) -> any ChannelHandler
    ) async throws -> HTTPServer {
        if configuration.tls == nil, configuration.clientCertificateCAPEM != nil {
            throw ServingCertificateError("a client CA needs TLS")
        }
        let sslContext = SSLContextHolder(try configuration.tls.map { try Self.makeSSLContext(configuration, tls: $0) })
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard acceptConnection(channel) else {
                    return channel.close()
                }
                guard let context = sslContext.current else {
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(CleartextProtocolSniffer(
                            maximumConcurrentStreams: configuration.maximumConcurrentStreams, makeHandler: makeHandler))
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                }.flatMap {
                    channel.configureHTTP2SecureUpgrade(
                        h2ChannelConfigurator: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try Self.configureHTTP2(channel.pipeline.syncOperations,
                                                        maximumConcurrentStreams: configuration.maximumConcurrentStreams,
                                                        makeHandler: makeHandler)
                            }
                        },
                        http1ChannelConfigurator: { channel in
                            channel.eventLoop.makeCompletedFuture {
                                try Self.configureHTTP1(channel.pipeline.syncOperations, makeHandler: makeHandler)
                            }
                        })
                }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        let port = channel.localAddress?.port ?? configuration.port
        return HTTPServer(channel: channel, port: port, configuration: configuration, sslContext: sslContext)
    }

    static func configureHTTP1(
        _ pipeline: ChannelPipeline.SynchronousOperations,
        makeHandler: @Sendable (HTTPProtocolVersion) -> any ChannelHandler
    ) throws {
        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try pipeline.addHandler(makeHandler(.http1_1))
    }

    static func configureHTTP2(
        _ pipeline: ChannelPipeline.SynchronousOperations,
        maximumConcurrentStreams: Int,
        makeHandler: @escaping @Sendable (HTTPProtocolVersion) -> any ChannelHandler
    ) throws {
        _ = try pipeline.configureHTTP2Pipeline(
            mode: .server, connectionConfiguration: HTTP2AbuseGuards.connection(maximumConcurrentStreams: maximumConcurrentStreams),
            streamConfiguration: .init()
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(AuthorityFromHostHandler())
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                try stream.pipeline.syncOperations.addHandler(makeHandler(.http2))
            }
        }
    }

    /// Stops accepting; open connections are left to their handlers.
    public func close() async throws {
        try await channel.close()
    }
}

/// The TLS context new connections get; replaced whole when the certificate changes.
private final class SSLContextHolder: Sendable {
    private let context: Mutex<NIOSSLContext?>
    init(_ context: NIOSSLContext?) { self.context = Mutex(context) }
    var current: NIOSSLContext? {
        get { context.withLock { $0 } }
        set { context.withLock { $0 = newValue } }
    }
}

/// On a cleartext connection, tells HTTP/2 with prior knowledge (h2c: the
/// client opens with the connection preface) from HTTP/1.1 by the first
/// bytes, sets up the pipeline for it and steps aside.
final class CleartextProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private let makeHandler: @Sendable (HTTPProtocolVersion) -> any ChannelHandler
    private let maximumConcurrentStreams: Int
    private var received: ByteBuffer?

    init(maximumConcurrentStreams: Int, makeHandler: @escaping @Sendable (HTTPProtocolVersion) -> any ChannelHandler) {
        self.maximumConcurrentStreams = maximumConcurrentStreams
        self.makeHandler = makeHandler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        var buffer = received ?? context.channel.allocator.buffer(capacity: incoming.readableBytes)
        buffer.writeBuffer(&incoming)
        let count = min(buffer.readableBytes, Self.preface.count)
        let matchesSoFar = buffer.readableBytesView.prefix(count).elementsEqual(Self.preface.prefix(count))
        if matchesSoFar && count < Self.preface.count {
            received = buffer  // Not enough bytes to tell yet.
            return
        }
        received = nil
        do {
            let pipeline = context.pipeline.syncOperations
            if matchesSoFar {
                try HTTPServer.configureHTTP2(pipeline, maximumConcurrentStreams: maximumConcurrentStreams, makeHandler: makeHandler)
            } else {
                try HTTPServer.configureHTTP1(pipeline, makeHandler: makeHandler)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(buffer))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

/// The HTTP/2 limits every Isthmus server puts on a client, written out
/// rather than left to SwiftNIO's defaults (which they equal today) so a
/// dependency update cannot loosen them unnoticed. Each is tested with a
/// client sending raw frames (`ProxyHTTP2AbuseTests`).
public enum HTTP2AbuseGuards {
    /// Concurrent streams per connection; one more is a connection error.
    public static let maximumConcurrentStreams = 100
    /// Header list bytes (HPACK-decoded) per request; more ends the connection.
    public static let maximumHeaderListSize = 16 * 1024
    /// Suspicious events (streams reset by the client before their answer,
    /// the rapid reset of CVE-2023-44487, among them) before GOAWAY ENHANCE_YOUR_CALM.
    public static let maximumConnectionGlitches = 200
    /// CONTINUATION frames in a row (the 2024 CONTINUATION flood).
    public static let maximumSequentialContinuationFrames = 5
    /// PING/SETTINGS/PRIORITY frames a client may send per `controlFrameWindow`.
    public static let maximumControlFrames = 200
    public static let controlFrameWindow: TimeAmount = .seconds(30)

    static func connection(maximumConcurrentStreams: Int = maximumConcurrentStreams) -> NIOHTTP2Handler.ConnectionConfiguration {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maximumConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: maximumHeaderListSize),
        ]
        configuration.maximumConnectionGlitches = maximumConnectionGlitches
        configuration.maximumSequentialContinuationFrames = maximumSequentialContinuationFrames
        configuration.controlFrameRateLimit.maximumCount = maximumControlFrames
        configuration.controlFrameRateLimit.windowLength = controlFrameWindow
        return configuration
    }
}
