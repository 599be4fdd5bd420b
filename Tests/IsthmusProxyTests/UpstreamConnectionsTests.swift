import IsthmusFakeAPIServer
import IsthmusKubeTypes
import IsthmusProxy
import IsthmusTestSupport
import NIOCore
import NIOPosix
import Testing

/// The proxy's HTTP/2 connections to the API server as the API server runs
/// them: its own stream limit, its GOAWAY, its connections lost.
@Suite("Proxy: upstream watch connections open on demand, by the API server's limit, GOAWAY and loss", .serialized)
struct UpstreamConnectionsTests {
    /// Before, 100 streams per connection were assumed whatever the server said:
    /// past the server's limit NIO holds a new stream's HEADERS until another
    /// stream ends, so a watch opened there never started while the others lasted.
    @Test("an API server allowing 5 streams per connection: 12 watches open on 3 upstream connections, none held back")
    func watchesSpreadByTheServersLimit() async throws {
        let h = try await ProxyHarness.start(
            configure: {
                $0.threads = 1
                $0.admin = AdminListenerConfiguration(host: "127.0.0.1", port: 0)
            },
            configureUpstream: { $0.maximumConcurrentStreams = 5 })
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clients = try await openWatches(h, group: group, http2: Array(repeating: true, count: 12), tag: "w")
        await eventually("all 12 watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 12 }
        await eventually("every client has its watch's first events", deadline: .seconds(30)) { allHaveTheirFirstEvents(clients) }
        #expect(h.upstream.openWatchCount == 12)
        // Counted by the proxy's watch lane: the readiness probe's short connections are apart.
        let statistics = try await h.proxy.upstreamStatistics()
        #expect(statistics.connectionsOpenedByLane[.watch] == 3, "watch connections opened for 12 watches at 5 streams each: \(statistics)")
        #expect(statistics.openConnections[.watch] == 3, "\(statistics)")
        #expect(try await h.scrape()[#"isthmus_proxy_upstream_connections{lane="watch"}"#] == 3)
        await close(clients, group)
        await eventually("the watches end upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 0 }
        // The watch connections stay open, idle, until the idle timeout or shutdown.
        await h.stop()
    }

    private func service(_ name: String) -> JSON {
        .object([("metadata", .object([("name", .string(name)), ("namespace", .string("demo"))]))])
    }

    private func openWatches(_ h: ProxyHarness, group: any EventLoopGroup, http2: [Bool], tag: String) async throws -> [WatchClient] {
        var clients: [WatchClient] = []
        for (index, useHTTP2) in http2.enumerated() {
            clients.append(try await WatchClient.open(
                group: group, port: h.proxy.port, caPEM: h.proxy.certificates.caCertificatePEM, http2: useHTTP2,
                target: "/api/v1/namespaces/demo/services?watch=1&resourceVersion=0&\(tag)=\(index)", token: h.peerToken))
        }
        return clients
    }

    private func close(_ clients: [WatchClient], _ group: MultiThreadedEventLoopGroup) async {
        for client in clients { try? await client.connection.close() }
        try? await group.shutdownGracefully()
    }

    private func allHaveTheirFirstEvents(_ clients: [WatchClient]) -> Bool {
        clients.allSatisfy { client in
            client.received.withLockedValue { $0.head?.status == .ok && $0.tail(4096).contains(#""type":"ADDED""#) }
        }
    }

    /// Before, the pool learnt of a GOAWAY only when opening a stream on that
    /// connection failed, and that request was answered 503.
    @Test("a GOAWAY from the API server: the open watches go on, the next watch opens on a new connection")
    func goAwayFromTheAPIServer() async throws {
        let h = try await ProxyHarness.start(configure: { $0.threads = 1 })
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clients = try await openWatches(h, group: group, http2: [true, true, false], tag: "before")
        await eventually("the watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 3 }
        await eventually("every client has its first events", deadline: .seconds(30)) { allHaveTheirFirstEvents(clients) }
        #expect(await h.upstream.sendGoAway() >= 1)
        await eventually("the proxy saw the GOAWAY", deadline: .seconds(30)) {
            ((try? await h.proxy.upstreamStatistics())?.goAwaysReceived ?? 0) >= 1
        }
        let late = try await openWatches(h, group: group, http2: [true], tag: "after")
        await eventually("the watch opened after the GOAWAY is served", deadline: .seconds(30)) { allHaveTheirFirstEvents(late) }
        let statistics = try await h.proxy.upstreamStatistics()
        #expect(statistics.connectionsOpenedByLane[.watch] == 2, "\(statistics)")
        // The watches on the connection that said GOAWAY still get what happens next.
        try h.upstream.create(resource: "services", object: service("after-goaway"))
        await eventually("every watch, old and new, sees the new Service", deadline: .seconds(30)) {
            (clients + late).allSatisfy { $0.received.withLockedValue { $0.tail(8192).contains("after-goaway") } }
        }
        #expect((clients + late).allSatisfy { !$0.received.withLockedValue(\.ended) })
        await close(clients + late, group)
        await h.stop()
    }

    /// Before, a watch whose upstream went away was reset (HTTP/2) or had its
    /// connection closed (HTTP/1.1): client-go saw an error and re-listed.
    @Test("the API server's connections lost under open watches: each watch ends as a timed-out one does, and the next is served")
    func connectionsLostUnderOpenWatches() async throws {
        let h = try await ProxyHarness.start(configure: {
            $0.threads = 1
            $0.admin = AdminListenerConfiguration(host: "127.0.0.1", port: 0)
        })
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let clients = try await openWatches(h, group: group, http2: [true, true, false], tag: "before")
        await eventually("the watches are open upstream", deadline: .seconds(30)) { h.upstream.openWatchCount == 3 }
        await eventually("every client has its first events", deadline: .seconds(30)) { allHaveTheirFirstEvents(clients) }
        #expect(await h.upstream.dropConnections() >= 1)
        // A clean end: END_STREAM on HTTP/2, the last chunk on HTTP/1.1 (a reset or a
        // closed connection never delivers `.end`).
        await eventually("every client's watch ended cleanly", deadline: .seconds(30)) {
            clients.allSatisfy { $0.received.withLockedValue(\.ended) }
        }
        #expect(h.proxy.statistics.watchesEndedByUpstreamLoss == 3)
        #expect(try await h.scrape()["isthmus_proxy_watches_ended_by_upstream_loss_total"] == 3)
        // The client's next watch gets a new upstream connection.
        let again = try await openWatches(h, group: group, http2: [true, false], tag: "again")
        await eventually("the watches opened afterwards are served", deadline: .seconds(30)) { allHaveTheirFirstEvents(again) }
        await close(clients + again, group)
        await h.stop()
    }
}
