import Foundation
import IsthmusHTTP
import IsthmusTestSupport
import IsthmusTrust
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// An upstream that answers every request with a watch that never ends:
/// 64 KiB MODIFIED events, written as fast as its connection takes them,
/// until `limit` bytes. `pushed` counts what it managed to hand on.
private final class EndlessWatchHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let version: HTTPProtocolVersion
    private let pushed: NIOLockedValueBox<Int>
    private let limit: Int
    private var written = 0
    private var streaming = false
    private var pumping = false
    private var resourceVersion = 1000

    init(version: HTTPProtocolVersion, pushed: NIOLockedValueBox<Int>, limit: Int) {
        self.version = version
        self.pushed = pushed
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head = unwrapInboundIn(data), !streaming else { return }
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        if version == .http1_1 { headers.add(name: "transfer-encoding", value: "chunked") }
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                              promise: nil)
        streaming = true
        pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    private func pump(context: ChannelHandlerContext) {
        // Not re-entered: a write failing on a closed stream can report a
        // writability change from inside the write, and recursing once per
        // event would overflow the stack. The loop re-checks writability anyway.
        guard !pumping else { return }
        pumping = true
        defer { pumping = false }
        while streaming, context.channel.isActive, context.channel.isWritable, written < limit {
            resourceVersion += 1
            var event = context.channel.allocator.buffer(capacity: 66_000)
            event.writeString(#"{"type":"MODIFIED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"big","namespace":"demo","resourceVersion":"\#(resourceVersion)","annotations":{"blob":""#)
            event.writeRepeatingByte(UInt8(ascii: "x"), count: 65_536)
            event.writeString("\"}}}}\n")
            written += event.readableBytes
            let total = written
            pushed.withLockedValue { $0 = total }
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(event))), promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        streaming = false
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        streaming = false
        context.close(promise: nil)
    }
}

/// The resident set of a process, from `/proc/PID/status`, in bytes.
private func residentBytes(of pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { return nil }
    return kilobytes * 1024
}

/// `isthmus proxy` as its own process; its stderr is drained all along (a
/// full pipe would block it) and kept for failure messages.
private final class ProxyProcess {
    /// The `isthmus` binary `swift build` put beside this test bundle.
    static let binary: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return ((exe as NSString).deletingLastPathComponent as NSString).appendingPathComponent("isthmus")
    }()

    private let process: Process
    let stderr = NIOLockedValueBox("")

    var pid: Int32 { process.processIdentifier }

    init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        let stderr = self.stderr
        let reading = pipe.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let data = reading.availableData
                if data.isEmpty { return }
                stderr.withLockedValue { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
    }

    /// The port of the `serving https://127.0.0.1:PORT` line, once printed.
    func servingPort() async -> Int? {
        let clock = ContinuousClock()
        let end = clock.now + .seconds(30)
        while clock.now < end && process.isRunning {
            let text = stderr.withLockedValue { $0 }
            if let range = text.range(of: "serving https://127.0.0.1:") {
                return Int(text[range.upperBound...].prefix { $0.isNumber })
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

@Suite("Proxy: memory under backpressure, measured on the isthmus binary", .serialized)
struct ProxyMemoryTests {
    /// What the upstream tries to push down the one watch.
    static let pushLimit = 200 * 1024 * 1024
    /// The bound on the proxy's resident growth.
    static let growthBound = 32 * 1024 * 1024

    /// A watch (upstream HTTP/2 when offered) and a LIST (a short request: upstream HTTP/1.1 keep-alive).
    static let watchTarget = "/api/v1/namespaces/demo/services?watch=1"
    static let listTarget = "/api/v1/namespaces/demo/services"

    @Test("a client that reads nothing while the upstream pushes 200 MB: the upstream is held back and the proxy grows < 32 MB",
          arguments: [("http/1.1", ["h2", "http/1.1"], watchTarget), ("h2", ["http/1.1"], watchTarget),
                      ("h2", ["h2", "http/1.1"], listTarget), ("http/1.1", ["h2", "http/1.1"], listTarget)])
    func residentMemoryBounded(client clientProtocol: String, upstream upstreamProtocols: [String], target: String) async throws {
        #expect(FileManager.default.isExecutableFile(atPath: ProxyProcess.binary), "no isthmus binary at \(ProxyProcess.binary)")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("isthmus-memory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let pushed = NIOLockedValueBox(0)
        let upstreamCertificates = try ServingCertificates.generate()
        let upstream = try await HTTPServer.start(
            group: group,
            configuration: HTTPServerConfiguration(tls: upstreamCertificates, applicationProtocols: upstreamProtocols),
            makeHandler: { version in EndlessWatchHandler(version: version, pushed: pushed, limit: Self.pushLimit) })

        func file(_ name: String, _ text: String) throws -> String {
            let url = directory.appendingPathComponent(name)
            try text.write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        let peerKey = SigningKeyPair()
        let peers = try TrustedPeers([TrustedPeer(clusterUUID: testPeerUUID, keys: [peerKey.publicKey],
                                                  rootCA: upstreamCertificates.caCertificatePEM)])
        let proxyCA = directory.appendingPathComponent("proxy-ca.crt").path
        let proxy = try ProxyProcess([
            "proxy", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--upstream", "https://127.0.0.1:\(upstream.port)",
            "--upstream-ca", try file("upstream-ca.crt", upstreamCertificates.caCertificatePEM),
            "--token-file", try file("token", proxySAToken + "\n"), "--peers", try file("peers.json", peers.encodedJSONString()),
            "--policies", repositoryPolicies, "--cluster-uuid", localClusterUUID, "--write-ca", proxyCA,
        ])
        do {
            let port = try #require(await proxy.servingPort(), "the proxy never said where it serves: \(proxy.stderr.withLockedValue { $0 })")
            let rssBefore = try #require(residentBytes(of: proxy.pid))

            let now = Int64(Date().timeIntervalSince1970)
            let token = mint(TokenClaims(subject: testPeerUUID, audience: localClusterUUID, scope: .api,
                                         notBefore: now - 10, expiresAt: now + 3600), with: peerKey)
            let client = try await WatchClient.open(
                group: group, port: port, caPEM: try String(contentsOfFile: proxyCA, encoding: .utf8),
                http2: clientProtocol == "h2", target: target, token: token,
                stopReadingAtHandshake: true)
            // The client stops reading at once and reads by hand only until the
            // response head is in: from then on it takes nothing at all.
            try await client.stopReading()
            // One read at most every 250 ms, so a loaded machine that is slow to hand
            // over the head does not make the client drain the stream meanwhile.
            let readClock = ContinuousClock()
            var lastRead = readClock.now - .seconds(1)
            await eventually("the watch's head reached the client", deadline: .seconds(30)) {
                if client.received.withLockedValue({ $0.head?.status == .ok }) { return true }
                if readClock.now - lastRead >= .milliseconds(250) {
                    client.readOnce()
                    lastRead = readClock.now
                }
                return false
            }

            // Until the upstream has pushed everything (no backpressure) or has
            // been stuck for 3 s (backpressure reached it), sampling the proxy.
            let clock = ContinuousClock()
            var peakRSS = rssBefore
            var lastPushed = -1
            var stuckSince = clock.now
            let deadline = clock.now + .seconds(120)
            while clock.now < deadline {
                if let rss = residentBytes(of: proxy.pid) { peakRSS = max(peakRSS, rss) }
                let current = pushed.withLockedValue { $0 }
                if current >= Self.pushLimit { break }
                if current != lastPushed {
                    lastPushed = current
                    stuckSince = clock.now
                } else if clock.now - stuckSince >= .seconds(3) {
                    break
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
            let totalPushed = pushed.withLockedValue { $0 }
            let received = client.received.withLockedValue { $0.body.count }
            let growth = peakRSS - rssBefore
            let mib = { (bytes: Int) in String(format: "%.1f MiB", Double(bytes) / 1_048_576) }
            print("""
                memory under backpressure (client \(clientProtocol), upstream offered \(upstreamProtocols.joined(separator: ",")), \(target)): \
                upstream pushed \(mib(totalPushed)) of \(mib(Self.pushLimit)), client took \(mib(received)); \
                proxy VmRSS \(mib(rssBefore)) before, \(mib(peakRSS)) peak, growth \(mib(growth))
                """)
            #expect(totalPushed < Self.pushLimit, "the upstream pushed all \(totalPushed) bytes: backpressure never reached it")
            // More than one 64 KiB event went through before the stall (how much more
            // depends on how far the kernel has grown the loopback socket buffers).
            #expect(totalPushed > 64 * 1024, "the watch barely flowed (\(totalPushed) bytes): nothing was measured")
            // The client reads by hand until the response head; what arrives with those
            // reads (a few socket-sized chunks) is all it takes. The upstream bound above
            // is what proves the stall reached it.
            #expect(received < 8 * 1024 * 1024, "the client took \(mib(received)): it was meant to read nothing")
            #expect(growth < Self.growthBound, "the proxy's resident memory grew \(mib(growth))")
            try? await client.connection.close()
        }
        proxy.stop()
        try? await upstream.close()
        try? await group.shutdownGracefully()
    }
}
