import Foundation
import IsthmusHTTP
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// How the metadata server listens.
public struct MetadataServerConfiguration: Sendable {
    public var host = "0.0.0.0"
    /// 0 picks a free port; read the bound one from ``MetadataServer/port``.
    public var port = 8443
    /// The serving certificate; nil with ``plainHTTP`` false generates a self-signed one.
    public var tls: ServingCertificates?
    /// Serve HTTP/1.1 without TLS: only behind something that terminates TLS
    /// (an Ingress) or in tests. Never the default.
    public var plainHTTP = false
    public var threads = 1

    public init() {}
}

/// One served request, for the access log: never the token.
public struct MetadataAccess: Sendable {
    public var method: String
    public var path: String
    public var code: Int
    /// The verified peer a private document went to.
    public var peer: String?
    /// Why a request was refused.
    public var reason: String?
}

/// The metadata service's listener (TLS with h2 and http/1.1, or plain
/// HTTP/1.1): answers from an in-memory ``MetadataSnapshot`` through
/// ``MetadataRouter``; ``replace(_:)`` swaps the snapshot atomically, so a
/// reload never blocks or drops a request.
public final class MetadataServer: Sendable {
    public let port: Int
    /// The serving certificate in use; nil when serving plain HTTP.
    public let certificates: ServingCertificates?
    private let server: HTTPServer
    private let state: NIOLockedValueBox<MetadataSnapshot>
    private let group: MultiThreadedEventLoopGroup
    private let isShutDown = NIOLockedValueBox(false)

    private init(port: Int, certificates: ServingCertificates?, server: HTTPServer, state: NIOLockedValueBox<MetadataSnapshot>,
                 group: MultiThreadedEventLoopGroup) {
        self.port = port
        self.certificates = certificates
        self.server = server
        self.state = state
        self.group = group
    }

    /// Listens and serves `snapshot`. `onAccess` is called once per response.
    public static func start(_ configuration: MetadataServerConfiguration, snapshot: MetadataSnapshot,
                             onAccess: @escaping @Sendable (MetadataAccess) -> Void = { _ in }) async throws -> MetadataServer {
        let certificates: ServingCertificates? =
            configuration.plainHTTP ? nil : try configuration.tls ?? ServingCertificates.generate(commonName: "isthmus-metadata")
        let state = NIOLockedValueBox(snapshot)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.threads))
        do {
            let server = try await HTTPServer.start(
                group: group,
                configuration: HTTPServerConfiguration(host: configuration.host, port: configuration.port, tls: certificates),
                makeHandler: { version in MetadataHandler(state: state, version: version, onAccess: onAccess) })
            return MetadataServer(port: server.port, certificates: certificates, server: server, state: state, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    public var snapshot: MetadataSnapshot { state.withLockedValue { $0 } }

    /// Serves `snapshot` from the next request on.
    public func replace(_ snapshot: MetadataSnapshot) {
        state.withLockedValue { $0 = snapshot }
    }

    /// Stops accepting and stops the event loops (responses are small and
    /// written at once, so there is nothing long-lived to drain).
    public func shutdown() async throws {
        let first = isShutDown.withLockedValue { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        try? await server.close()
        try await group.shutdownGracefully()
    }
}

/// One HTTP/1.1 connection or HTTP/2 stream: collects the request head,
/// answers at its end. A thin shell around ``MetadataRouter``.
final class MetadataHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: NIOLockedValueBox<MetadataSnapshot>
    private let version: HTTPProtocolVersion
    private let onAccess: @Sendable (MetadataAccess) -> Void
    private var pending: (request: MetadataRequest, keepAlive: Bool)?

    init(state: NIOLockedValueBox<MetadataSnapshot>, version: HTTPProtocolVersion,
         onAccess: @escaping @Sendable (MetadataAccess) -> Void) {
        self.state = state
        self.version = version
        self.onAccess = onAccess
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            let request = MetadataRequest(method: head.method.rawValue, target: head.uri,
                                          authorization: head.headers["authorization"],
                                          ifNoneMatch: head.headers.first(name: "if-none-match"))
            pending = (request, version == .http2 || head.isKeepAlive)
        case .body:
            break  // no endpoint reads a body; any other method is a 405 anyway
        case .end:
            guard let (request, keepAlive) = pending else { return }
            pending = nil
            let snapshot = state.withLockedValue { $0 }
            let response = MetadataRouter.respond(to: request, snapshot: snapshot, now: Int64(Date().timeIntervalSince1970))
            write(response, isHead: request.method == "HEAD", keepAlive: keepAlive, context: context)
            let path = String(request.target.prefix { $0 != "?" })
            onAccess(MetadataAccess(method: request.method, path: path, code: response.code, peer: response.peer,
                                    reason: response.code >= 400 ? response.logReason : nil))
        }
    }

    private func write(_ response: MetadataResponse, isHead: Bool, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        headers.add(name: "Date", value: KubeResponse.httpDate(Date()))
        if response.code != 304 { headers.add(name: "Content-Length", value: String(response.body.count)) }
        if version == .http1_1 && !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.code), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !isHead && !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        }
        if version == .http1_1 && !keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

@available(*, unavailable)
extension MetadataHandler: Sendable {}
