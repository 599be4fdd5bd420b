import NIOCore
import NIOHTTP1

/// Where the admin listener (plain HTTP: `/metrics`, `/healthz`, `/readyz`) binds.
public struct AdminListenerConfiguration: Sendable, Hashable {
    public var host: String
    /// 0 picks a free port; read the bound one from ``ProxyServer/adminPort``.
    public var port: Int

    public init(host: String = "0.0.0.0", port: Int = 9090) {
        self.host = host
        self.port = port
    }
}

/// The local answers both listeners give without authentication.
enum LocalEndpoint {
    case healthz
    case readyz(verbose: Bool)
    case metrics

    /// The endpoint `target` names, if any (`/metrics` only where `metrics` is served).
    static func match(_ target: String, metrics: Bool) -> LocalEndpoint? {
        // Runs on every proxied request: a slice, not an array of pieces.
        let path = target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[..<$0] } ?? target[...]
        switch path {
        case "/healthz": return .healthz
        case "/readyz": return .readyz(verbose: ReadinessReport.isVerbose(target: target))
        case "/metrics" where metrics: return .metrics
        default: return nil
        }
    }

    /// Status code, content type and body.
    func answer(_ services: ProxyServices) -> (code: Int, contentType: String, body: [UInt8]) {
        switch self {
        case .healthz:
            return (200, "text/plain; charset=utf-8", Array("ok".utf8))
        case .readyz(let verbose):
            let report = services.readiness()
            return (report.statusCode, "text/plain; charset=utf-8", Array(report.body(verbose: verbose).utf8))
        case .metrics:
            return (200, MetricsRegistry.contentType, Array(services.operations.metrics.registry.exposition().utf8))
        }
    }
}

/// One admin-listener connection (HTTP/1.1): `/metrics`, `/healthz`,
/// `/readyz`; anything else is a 404. Never proxied, never authenticated,
/// so it belongs on a port only the cluster's monitoring reaches.
final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let services: ProxyServices

    init(services: ProxyServices) {
        self.services = services
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let (code, contentType, body): (Int, String, [UInt8])
        if head.method != .GET && head.method != .HEAD {
            (code, contentType, body) = (405, "text/plain; charset=utf-8", Array("method not allowed\n".utf8))
        } else if let endpoint = LocalEndpoint.match(head.uri, metrics: true) {
            (code, contentType, body) = endpoint.answer(services)
        } else {
            (code, contentType, body) = (404, "text/plain; charset=utf-8", Array("404 page not found\n".utf8))
        }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "content-length", value: String(body.count))
        headers.add(name: "x-content-type-options", value: "nosniff")
        if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: HTTPResponseStatus(statusCode: code),
                                                             headers: headers))), promise: nil)
        if head.method != .HEAD { context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil) }
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension AdminHandler: Sendable {}
