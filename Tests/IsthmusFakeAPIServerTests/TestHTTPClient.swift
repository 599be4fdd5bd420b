import IsthmusKubeTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client for tests: one connection per request, the body
/// handed over line by line (watch streams are newline-delimited JSON).
final class LineHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    private var pending: [UInt8] = []
    private let onHead: (Int) -> Void
    private let onLine: ([UInt8]) -> Void
    private let onEnd: () -> Void
    private var ended = false

    init(onHead: @escaping (Int) -> Void, onLine: @escaping ([UInt8]) -> Void, onEnd: @escaping () -> Void) {
        self.onHead = onHead
        self.onLine = onLine
        self.onEnd = onEnd
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            onHead(Int(head.status.code))
        case .body(let buffer):
            buffer.withUnsafeReadableBytes { raw in
                var start = 0
                for i in 0..<raw.count where raw[i] == 0x0A {
                    pending.append(contentsOf: raw[start..<i])
                    onLine(pending)
                    pending.removeAll(keepingCapacity: true)
                    start = i + 1
                }
                pending.append(contentsOf: raw[start..<raw.count])
            }
        case .end:
            if !pending.isEmpty { onLine(pending); pending = [] }
            finish(context)
        }
    }

    private func finish(_ context: ChannelHandlerContext) {
        guard !ended else { return }
        ended = true
        onEnd()
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !ended { ended = true; onEnd() }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

struct TestHTTPClient: Sendable {
    let group: any EventLoopGroup
    let port: Int
    let token = "kubectl-test-token"

    /// Opens a connection, sends one request; lines arrive on the channel's event loop.
    func open(_ method: HTTPMethod = .GET, _ path: String, body: [UInt8] = [], contentType: String = "application/json",
              onHead: @escaping @Sendable (Int) -> Void = { _ in },
              onLine: @escaping @Sendable ([UInt8]) -> Void,
              onEnd: @escaping @Sendable () -> Void) async throws -> any Channel {
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(LineHandler(onHead: onHead, onLine: onLine, onEnd: onEnd))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "127.0.0.1:\(port)")
        headers.add(name: "Authorization", value: "Bearer \(token)")
        headers.add(name: "Accept", value: "application/json")
        if !body.isEmpty {
            headers.add(name: "Content-Type", value: contentType)
            headers.add(name: "Content-Length", value: String(body.count))
        }
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: path, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if !body.isEmpty {
            channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
        }
        try await channel.writeAndFlush(HTTPClientRequestPart.end(nil)).get()
        return channel
    }

    /// A whole response: status and body.
    func request(_ method: HTTPMethod = .GET, _ path: String, body: [UInt8] = []) async throws -> (Int, [UInt8]) {
        let state = NIOLockedValueBox<(Int, [UInt8])>((0, []))
        let done = group.next().makePromise(of: Void.self)
        _ = try await open(method, path, body: body,
                           onHead: { code in state.withLockedValue { $0.0 = code } },
                           onLine: { line in state.withLockedValue { $0.1 += line + [0x0A] } },
                           onEnd: { done.succeed() })
        try await done.futureResult.get()
        return state.withLockedValue { $0 }
    }

    /// A watch as an async sequence of parsed events; ends when the server ends the stream.
    func watch(_ path: String) async throws -> (AsyncStream<JSON>, any Channel) {
        let (stream, continuation) = AsyncStream<JSON>.makeStream()
        let channel = try await open(.GET, path, onLine: { line in
            if let event = try? JSON(parsing: line) { continuation.yield(event) }
        }, onEnd: { continuation.finish() })
        return (stream, channel)
    }
}
