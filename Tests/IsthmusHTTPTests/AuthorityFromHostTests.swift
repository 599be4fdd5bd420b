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
