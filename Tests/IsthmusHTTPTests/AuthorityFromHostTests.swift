import IsthmusHTTP
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import Testing

@Suite("HTTP/2 requests without :authority")
struct AuthorityFromHostTests {
    /// The stream pipeline HTTPServer builds, on an embedded channel.
    func streamChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(AuthorityFromHostHandler())
        try channel.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ServerCodec())
        return channel
    }

    func head(_ headers: [(String, String)]) throws -> HTTPRequestHead? {
        let channel = try streamChannel()
        defer { _ = try? channel.finish() }
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: HPACKHeaders(headers), endStream: true)))
        guard case .head(let head) = try channel.readInbound(as: HTTPServerRequestPart.self) else { return nil }
        return head
    }

    @Test("a request with host but no :authority (as HAProxy sends) is served, host kept")
    func hostOnly() throws {
        let head = try #require(try head([(":method", "GET"), (":scheme", "https"), (":path", "/api/v1/services"),
                                          ("host", "proxy.example:8443"), ("accept", "application/json")]))
        #expect(head.uri == "/api/v1/services")
        #expect(head.headers["host"] == ["proxy.example:8443"])
        #expect(head.headers["accept"] == ["application/json"])
        #expect(!head.headers.contains(name: ":authority"))
    }

    @Test("a request with :authority is left as it is")
    func authorityPresent() throws {
        let head = try #require(try head([(":method", "GET"), (":scheme", "https"), (":authority", "a.example"),
                                          (":path", "/version")]))
        #expect(head.headers["host"] == ["a.example"])
    }

    @Test("the handler leaves the stream's pipeline after the request's header block (a watch does not keep it)",
          arguments: [true, false])
    func leavesAfterHead(hostOnly: Bool) throws {
        let channel = try streamChannel()
        defer { _ = try? channel.finish() }
        let authority: [(String, String)] = hostOnly ? [("host", "a.example")] : [(":authority", "a.example")]
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(
            headers: HPACKHeaders([(":method", "GET"), (":scheme", "https"), (":path", "/version")] + authority))))
        guard case .head(let head) = try channel.readInbound(as: HTTPServerRequestPart.self) else {
            Issue.record("no request head")
            return
        }
        #expect(head.headers["host"] == ["a.example"])
        #expect(throws: ChannelPipelineError.self) {
            try channel.pipeline.syncOperations.context(handlerType: AuthorityFromHostHandler.self)
        }
        // The rest of the stream still reaches the codec.
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
        #expect(try channel.readInbound(as: HTTPServerRequestPart.self) == .end(nil))
    }

    @Test("a request with neither is still refused by the codec")
    func neither() throws {
        let channel = try streamChannel()
        defer { _ = try? channel.finish() }
        #expect(throws: (any Error).self) {
            try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(
                headers: HPACKHeaders([(":method", "GET"), (":scheme", "https"), (":path", "/version")]), endStream: true)))
        }
    }
}
