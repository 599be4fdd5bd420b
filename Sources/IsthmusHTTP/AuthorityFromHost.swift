import NIOCore
import NIOHPACK
import NIOHTTP2

/// Gives an HTTP/2 request without `:authority` one from its `host` header.
///
/// RFC 9113 §8.3.1 lets a client send `host` instead of `:authority` (HAProxy
/// does when it turns an HTTP/1.1 request into HTTP/2), but NIO's
/// HTTP2FramePayloadToHTTP1ServerCodec requires `:authority` and resets the
/// stream without it. Sits just before that codec; everything else passes through.
/// A stream carries one request, so the handler leaves the pipeline after the
/// request's header block: a long-lived stream (a watch) does not keep it.
public final class AuthorityFromHostHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = HTTP2Frame.FramePayload
    public typealias InboundOut = HTTP2Frame.FramePayload

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        guard case .headers(var headers) = payload else {
            context.fireChannelRead(data)
            return
        }
        guard !headers.headers.contains(name: ":authority"),
              headers.headers.contains(name: ":method"),
              let host = headers.headers.first(name: "host")
        else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        // Pseudo-headers come first in a header block.
        var withAuthority = HPACKHeaders([(":authority", host)])
        withAuthority.add(contentsOf: headers.headers)
        headers.headers = withAuthority
        context.fireChannelRead(wrapInboundOut(.headers(headers)))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
