import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL

/// How a server listens. Plain data, checked once at start.
public struct HTTPServerConfiguration: Sendable {
    /// Address to bind; `127.0.0.1` keeps dev and test servers off the network.
    public var host: String
    /// 0 picks a free port; read the bound one from `HTTPServer.port`.
    public var port: Int
    /// Serving certificate; nil serves plain HTTP/1.1 (no h2c).
    public var tls: ServingCertificates?
    /// ALPN offers, most preferred first. kube clients negotiate h2 over TLS.
    public var applicationProtocols: [String]

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

    private init(channel: any Channel, port: Int) {
        self.channel = channel
        self.port = port
    }

    /// Binds and starts accepting. `acceptConnection` is asked for each new
    /// connection (a `false` closes it at once: fault injection, limits).
    public static func start(
        group: any EventLoopGroup,
        configuration: HTTPServerConfiguration,
        acceptConnection: @escaping @Sendable () -> Bool = { true },
        makeHandler: @escaping @Sendable (HTTPProtocolVersion) -> any ChannelHandler
    ) async throws -> HTTPServer {
        var sslContext: NIOSSLContext?
        if let tls = configuration.tls {
            let chain = try NIOSSLCertificate.fromPEMBytes(Array(tls.certificatePEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
            let key = try NIOSSLPrivateKey(bytes: Array(tls.privateKeyPEM.utf8), format: .pem)
            var tlsConfiguration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
            tlsConfiguration.applicationProtocols = configuration.applicationProtocols
            sslContext = try NIOSSLContext(configuration: tlsConfiguration)
        }
        let context = sslContext
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard acceptConnection() else {
                    return channel.close()
                }
                guard let context else {
                    return channel.eventLoop.makeCompletedFuture {
                        try Self.configureHTTP1(channel.pipeline.syncOperations, makeHandler: makeHandler)
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                }.flatMap {
                    channel.configureHTTP2SecureUpgrade(
                        h2ChannelConfigurator: { channel in
                            channel.configureHTTP2Pipeline(mode: .server) { stream in
                                stream.eventLoop.makeCompletedFuture {
                                    try stream.pipeline.syncOperations.addHandler(AuthorityFromHostHandler())
                                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
                                    try stream.pipeline.syncOperations.addHandler(makeHandler(.http2))
                                }
                            }.map { _ in }
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
        return HTTPServer(channel: channel, port: port)
    }

    private static func configureHTTP1(
        _ pipeline: ChannelPipeline.SynchronousOperations,
        makeHandler: @Sendable (HTTPProtocolVersion) -> any ChannelHandler
    ) throws {
        try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
        try pipeline.addHandler(makeHandler(.http1_1))
    }

    /// Stops accepting; open connections are left to their handlers.
    public func close() async throws {
        try await channel.close()
    }
}
