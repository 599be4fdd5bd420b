import NIOCore
import NIOHTTP1
import NIOPosix

/// One answer of an admin port.
public struct AdminResponse: Sendable {
    public var code: Int
    public var contentType: String
    public var body: [UInt8]

    public init(code: Int, contentType: String, body: [UInt8]) {
        self.code = code
        self.contentType = contentType
        self.body = body
    }

    public static func text(_ code: Int, _ body: String) -> AdminResponse {
        AdminResponse(code: code, contentType: "text/plain; charset=utf-8", body: Array(body.utf8))
    }

    public static let notFound = AdminResponse.text(404, "404 page not found\n")
}

/// The plain-HTTP admin port of every Isthmus service (`/healthz`, `/readyz`,
/// `/metrics`, as each service defines them). Never authenticated, so it
/// belongs on a port only the cluster's monitoring reaches.
public final class AdminServer: Sendable {
    let server: HTTPServer
    /// The bound port (useful with port 0).
    public var port: Int { server.port }

    /// Binds `host:port` and answers each GET or HEAD with `respond(target)`
    /// (nil is a 404) until ``close()``.
    public static func start(host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                             respond: @escaping AdminHTTPHandler.Respond) async throws -> AdminServer {
        let server = try await HTTPServer.start(
            group: group, configuration: HTTPServerConfiguration(host: host, port: port, tls: nil)
        ) { _ in AdminHTTPHandler(respond: respond) }
        return AdminServer(server: server)
    }

    init(server: HTTPServer) { self.server = server }

    public func close() async throws { try await server.close() }
}

/// One admin connection (HTTP/1.1). Other methods than GET and HEAD are 405.
public final class AdminHTTPHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart
    /// The request target (path and query) to its answer; nil for none.
    public typealias Respond = @Sendable (String) -> AdminResponse?

    private let respond: Respond

    public init(respond: @escaping Respond) { self.respond = respond }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let response: AdminResponse
        if head.method != .GET && head.method != .HEAD {
            response = .text(405, "method not allowed\n")
        } else {
            response = respond(head.uri) ?? .notFound
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.count))
        headers.add(name: "x-content-type-options", value: "nosniff")
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: response.code),
                                                             headers: headers))), promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil) }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension AdminHTTPHandler: Sendable {}
