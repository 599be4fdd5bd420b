import IsthmusHTTP
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@Suite("The admin port's handler, shared by the proxy and the controller")
struct AdminHTTPHandlerTests {
    /// Sends one request head and returns the response's parts.
    static func exchange(_ method: HTTPMethod, _ target: String, version: HTTPVersion = .http1_1) throws
        -> (head: HTTPResponseHead, body: String, closed: Bool) {
        let channel = EmbeddedChannel(handler: AdminHTTPHandler { target in
            switch target {
            case "/healthz": .text(200, "ok\n")
            case "/readyz?verbose": .text(503, "[-]upstream failed\n")
            default: nil
            }
        })
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9090)).wait()
        var head = HTTPRequestHead(version: version, method: method, uri: target)
        if version == .http1_0 { head.headers.add(name: "connection", value: "close") }
        try channel.writeInbound(HTTPServerRequestPart.head(head))
        try channel.writeInbound(HTTPServerRequestPart.end(nil))
        guard case .head(let responseHead)? = try channel.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no response head")
            throw CancellationError()
        }
        var body = ""
        while let part = try channel.readOutbound(as: HTTPServerResponsePart.self) {
            if case .body(.byteBuffer(let buffer)) = part { body += String(buffer: buffer) }
        }
        return (responseHead, body, !channel.isActive)
    }

    @Test("answers what the service defines, with its length and nosniff; the query reaches it")
    func answers() throws {
        let ok = try Self.exchange(.GET, "/healthz")
        #expect(ok.head.status == .ok && ok.body == "ok\n")
        #expect(ok.head.headers["content-length"] == ["3"])
        #expect(ok.head.headers["x-content-type-options"] == ["nosniff"])
        #expect(!ok.closed)
        let verbose = try Self.exchange(.GET, "/readyz?verbose")
        #expect(verbose.head.status == .serviceUnavailable && verbose.body == "[-]upstream failed\n")
    }

    @Test("an unknown path is 404, a method other than GET or HEAD is 405, HEAD has no body")
    func refusals() throws {
        let missing = try Self.exchange(.GET, "/debug/pprof")
        #expect(missing.head.status == .notFound && missing.body == "404 page not found\n")
        let post = try Self.exchange(.POST, "/healthz")
        #expect(post.head.status == .methodNotAllowed)
        let head = try Self.exchange(.HEAD, "/healthz")
        #expect(head.head.status == .ok && head.body.isEmpty && head.head.headers["content-length"] == ["3"])
    }

    @Test("a client that asks for close gets it")
    func connectionClose() throws {
        let answer = try Self.exchange(.GET, "/healthz", version: .http1_0)
        #expect(answer.head.headers["connection"] == ["close"])
        #expect(answer.closed)
    }
}
