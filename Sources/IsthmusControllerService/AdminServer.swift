import IsthmusHTTP
import NIOCore
import NIOHTTP1
import NIOPosix

/// The controller's plain-HTTP admin port: `/healthz` (the process runs),
/// `/readyz` (``ControllerService/isReady``) and `/metrics`.
public final class AdminServer: Sendable {
    let server: HTTPServer
    /// The bound port (useful with port 0).
    public var port: Int { server.port }

    /// Binds `host:port` and serves until ``close()``.
    public static func start(host: String, port: Int, ready: @escaping @Sendable () -> Bool,
                             metrics: ControllerMetricsRegistry) async throws -> AdminServer {
        let server = try await HTTPServer.start(
            group: MultiThreadedEventLoopGroup.singleton,
            configuration: HTTPServerConfiguration(host: host, port: port, tls: nil)
        ) { _ in
            AdminHandler { path in
                switch path {
                case "/healthz", "/livez": return (.ok, "text/plain", "ok\n")
                case "/readyz": return ready() ? (.ok, "text/plain", "ok\n") : (.serviceUnavailable, "text/plain", "not ready\n")
                case "/metrics": return (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics.exposition())
                default: return (.notFound, "text/plain", "not found\n")
                }
            }
        }
        return AdminServer(server: server)
    }

    init(server: HTTPServer) { self.server = server }

    public func close() async throws { try await server.close() }
}

/// Answers each request from `respond(path)`; one job, no state.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    typealias Respond = @Sendable (String) -> (HTTPResponseStatus, String, String)

    let respond: Respond
    init(respond: @escaping Respond) { self.respond = respond }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")
        let (status, contentType, body) = respond(path)
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(body.utf8.count))])
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(string: head.method == .HEAD ? "" : body)))), promise: nil)
        let keepAlive = head.isKeepAlive
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
