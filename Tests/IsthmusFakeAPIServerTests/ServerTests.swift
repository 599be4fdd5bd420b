import Foundation
import IsthmusFakeAPIServer
import IsthmusKubeTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// HTTP-level behaviour over plain HTTP/1.1 (TLS and HTTP/2 are covered by the kubectl tests).
@Suite("Serving", .serialized)
struct ServerTests {
    static func start(_ configure: (inout FakeAPIServer.Configuration) -> Void = { _ in }) async throws -> (FakeAPIServer, TestHTTPClient, MultiThreadedEventLoopGroup) {
        var config = FakeAPIServer.Configuration(tokens: ["kubectl-test-token": "admin"])
        config.plainHTTP = true
        config.threads = 1
        configure(&config)
        let server = try await FakeAPIServer.start(config)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        return (server, TestHTTPClient(group: group, port: server.port), group)
    }

    /// Sends one request with explicit headers and returns status, headers and body.
    static func raw(_ port: Int, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return "" }
        // Never hang a test run: a read that waits 30 s gives up.
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test("a bad token gets the 401 Status of fixture 37, without priority-and-fairness headers")
    func unauthorized() async throws {
        let (server, _, group) = try await Self.start()
        let response = try Self.raw(server.port, "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n")
        #expect(response.hasPrefix("HTTP/1.1 401 Unauthorized\r\n"))
        #expect(!response.contains("X-Kubernetes-Pf-Flowschema-Uid"))
        #expect(response.hasSuffix("\r\n\r\n" + #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"# + "\n"))
        #expect(!server.recentRequests.contains { $0.header("authorization")?.contains("wrong") ?? false })
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("protobuf-only Accept is 406; protobuf-then-JSON gets JSON")
    func protobuf() async throws {
        let (server, _, group) = try await Self.start()
        let auth = "Authorization: Bearer kubectl-test-token\r\nConnection: close\r\n"
        let only = try Self.raw(server.port, "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.kubernetes.protobuf\r\n\(auth)\r\n")
        #expect(only.hasPrefix("HTTP/1.1 406 Not Acceptable\r\n"))
        #expect(only.contains(#""reason":"NotAcceptable""#))
        let both = try Self.raw(server.port, "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.kubernetes.protobuf,application/json\r\n\(auth)\r\n")
        #expect(both.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(both.contains(#"{"kind":"NamespaceList","apiVersion":"v1","metadata":{"resourceVersion":"#))
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("unknown group is text/plain 404, unknown resource a Status 404, DELETE /version a 405")
    func notFound() async throws {
        let (server, client, group) = try await Self.start()
        let (code, body) = try await client.request(.GET, "/apis/nosuch.example.com/v1")
        #expect(code == 404 && body == Array("404 page not found\n".utf8))
        let (code2, body2) = try await client.request(.GET, "/api/v1/namespaces/default/foos")
        #expect(code2 == 404)
        #expect(String(decoding: body2, as: UTF8.self) == String(decoding: Status.resourceNotFound.body, as: UTF8.self))
        let (code3, _) = try await client.request(.DELETE, "/version")
        #expect(code3 == 405)
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("a watch is chunked, one event per chunk, and ends cleanly at timeoutSeconds")
    func chunkedWatch() async throws {
        let (server, _, group) = try await Self.start()
        try server.create(resource: "configmaps", object: configMap("a", 1))
        let rv = server.resourceVersion
        try server.mergePatch(resource: "configmaps", namespace: "default", name: "a", patch: .object([("data", .object([("v", .string("2"))]))]))
        let response = try Self.raw(server.port, "GET /api/v1/namespaces/default/configmaps?watch=1&resourceVersion=\(rv)&timeoutSeconds=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer kubectl-test-token\r\nConnection: close\r\n\r\n")
        #expect(response.lowercased().contains("transfer-encoding: chunked\r\n"))
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        let lines = body.components(separatedBy: "\r\n")
        // size, payload, size 0, "", ""
        #expect(lines.count == 5)
        #expect(lines.first.flatMap { Int($0, radix: 16) } == lines.dropFirst().first.map { $0.utf8.count })
        #expect(lines.dropFirst().first?.hasPrefix(#"{"type":"MODIFIED","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a""#) ?? false)
        #expect(lines.dropFirst(2).first == "0")
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("fault injection: 429 with Retry-After, refused connections, a cut watch, delayed responses")
    func faults() async throws {
        let (server, client, group) = try await Self.start()
        var faults = FaultInjection()
        faults.errorFraction = 1
        faults.errorStatusCode = 429
        server.setFaults(faults)
        let throttled = try Self.raw(server.port, "GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer kubectl-test-token\r\nConnection: close\r\n\r\n")
        #expect(throttled.hasPrefix("HTTP/1.1 429 Too Many Requests\r\n") && throttled.contains("Retry-After: 1\r\n"))

        faults = FaultInjection()
        faults.refuseConnections = true
        server.setFaults(faults)
        #expect(try Self.raw(server.port, "GET /version HTTP/1.1\r\nHost: x\r\n\r\n") == "")

        faults = FaultInjection()
        faults.cutWatchesAfterEvents = 2
        faults.responseDelay = .milliseconds(50)
        server.setFaults(faults)
        for i in 0..<5 { try server.create(resource: "configmaps", object: configMap("c\(i)", i)) }
        let lines = NIOLockedValueBox<[String]>([])
        let ended = NIOLockedValueBox(false)
        _ = try await client.open(.GET, "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0",
                                  onLine: { l in lines.withLockedValue { $0.append(String(decoding: l, as: UTF8.self)) } },
                                  onEnd: { ended.withLockedValue { $0 = true } })
        await eventually("the watch was cut") { ended.withLockedValue { $0 } }
        #expect(lines.withLockedValue { $0.count } == 2)
        server.setFaults(FaultInjection())
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("a watcher that stops reading is closed once it falls out of the history")
    func slowWatcher() async throws {
        let (server, _, group) = try await Self.start { $0.historyCapacity = 20 }
        try server.create(resource: "configmaps", object: configMap("big", 0))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(server.port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(connected == 0)
        let request = Array("GET /api/v1/namespaces/default/configmaps?watch=1&resourceVersion=\(server.resourceVersion) HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer kubectl-test-token\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        await eventually("the watch is open") { server.openWatchCount == 1 }
        // Never read; write far more than socket buffers and the history hold.
        let payload = String(repeating: "x", count: 256 * 1024)
        var i = 0
        while server.openWatchCount == 1 && i < 2000 {
            i += 1
            try server.mergePatch(resource: "configmaps", namespace: "default", name: "big",
                                  patch: .object([("data", .object([("v", .string("\(i)" + payload))]))]))
            if i % 20 == 0 { try? await Task.sleep(for: .milliseconds(5)) }
        }
        await eventually("the slow watcher was dropped") { server.openWatchCount == 0 }
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("watch-list: initial ADDEDs in name order, then the initial-events-end bookmark (fixture 30); on a LIST it is 422")
    func watchList() async throws {
        let (server, client, group) = try await Self.start()
        for name in ["b", "a", "c"] { try server.create(resource: "configmaps", object: configMap(name, 1)) }
        let (code, body) = try await client.request(.GET, "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1")
        #expect(code == 200)
        let events = try String(decoding: body, as: UTF8.self).split(separator: "\n").map { try JSON(parsing: String($0)) }
        #expect(events.map { $0["type"]?.stringValue ?? "" } == ["ADDED", "ADDED", "ADDED", "BOOKMARK"])
        #expect(events.prefix(3).map { $0.value(at: ["object", "metadata", "name"])?.stringValue ?? "" } == ["a", "b", "c"])
        #expect(events.last?.value(at: ["object", "metadata", "annotations", "k8s.io/initial-events-end"]) == .string("true"))
        #expect(events.last?.value(at: ["object", "metadata", "resourceVersion"]) == .string(String(server.resourceVersion)))
        let (listCode, _) = try await client.request(.GET, "/api/v1/namespaces/default/configmaps?sendInitialEvents=true")
        #expect(listCode == 422)
        try await server.shutdown()
        try await group.shutdownGracefully()
    }

    @Test("recent requests keep headers with the token redacted")
    func recorded() async throws {
        let (server, client, group) = try await Self.start()
        _ = try await client.request(.GET, "/api/v1/namespaces")
        let last = try #require(server.recentRequests.last)
        #expect(last.method == "GET" && last.uri == "/api/v1/namespaces" && last.statusCode == 200)
        #expect(last.header("authorization") == "<redacted>")
        try await server.shutdown()
        try await group.shutdownGracefully()
    }
}
