import Testing

@testable import IsthmusProxy

/// Small pool bounds, so that each rule is reached in a few leases.
private func poolLimits(short: Int = 2, watch: Int = 2, streams: Int = 3,
                        idle: Int = UpstreamPoolLimits().maxIdleConnections) -> UpstreamPoolLimits {
    var limits = UpstreamPoolLimits()
    limits.shortConnections = short
    limits.watchConnections = watch
    limits.streamsPerConnection = streams
    limits.maxIdleConnections = idle
    return limits
}

@Suite("Upstream pool state")
struct UpstreamPoolStateTests {
    @Test("the first request opens a connection; the next ones wait for it until its budget")
    func firstConnection() {
        var pool = UpstreamPoolState(limits: poolLimits())
        #expect(pool.lease(.short) == .open(0))
        #expect(pool.lease(.short) == .wait(0))
        #expect(pool.lease(.short) == .wait(0))
        #expect(pool.lease(.short) == .open(1))  // 0 is at its budget of 3
        #expect(pool.connected(0, protocol: .http2) == 3)
        #expect(pool.lease(.short) == .wait(1))
    }

    @Test("the API server's SETTINGS_MAX_CONCURRENT_STREAMS is the connection's budget, and the lane's next assumption")
    func streamBudgetFromSettings() {
        var pool = UpstreamPoolState(limits: poolLimits(watch: 8, streams: 3))
        #expect(pool.lease(.watch) == .open(0))
        #expect(pool.connected(0, protocol: .http2) == 1)
        // The server allows 5, not the 3 assumed: four more fit on connection 0.
        pool.remoteStreamLimit(0, 5)
        for _ in 0..<4 { #expect(pool.lease(.watch) == .use(0)) }
        #expect(pool.lease(.watch) == .open(1))
        // A new connection is assumed to allow what the last SETTINGS said.
        for _ in 0..<4 { #expect(pool.lease(.watch) == .wait(1)) }
        #expect(pool.lease(.watch) == .open(2))
        // A server lowering its limit: no new stream until the open ones are under it.
        pool.remoteStreamLimit(0, 2)
        #expect(pool.streams(on: 0) == 5)
        for _ in 0..<3 { pool.released(0) }
        // 0 is at its 2; 1 is assumed to allow 2 now and holds 5; 2 holds 1 of 2.
        #expect(pool.lease(.watch) == .wait(2))
        #expect(pool.lease(.watch) == .open(3))
        pool.released(0)
        #expect(pool.lease(.watch) == .use(0))
    }

    @Test("a GOAWAY before the connection was ready: it serves none of its waiters, the next lease opens another")
    func goAwayWhileConnecting() {
        var pool = UpstreamPoolState(limits: poolLimits(watch: 8, streams: 3))
        #expect(pool.lease(.watch) == .open(0))
        #expect(pool.lease(.watch) == .wait(0))
        pool.drain(0)
        #expect(pool.connected(0, protocol: .http2) == 0)
        #expect(pool.streams(on: 0) == 0)
        #expect(pool.lease(.watch) == .open(1))
    }

    @Test("a full lane is exhausted; a released stream makes room")
    func exhausted() {
        var pool = UpstreamPoolState(limits: poolLimits(short: 1, streams: 2))
        #expect(pool.lease(.short) == .open(0))
        _ = pool.connected(0, protocol: .http2)
        #expect(pool.lease(.short) == .use(0))
        #expect(pool.lease(.short) == .exhausted)
        pool.released(0)
        #expect(pool.lease(.short) == .use(0))
    }

    @Test("watches never take short-request connections, so long watches cannot starve gets")
    func lanes() {
        var pool = UpstreamPoolState(limits: poolLimits(short: 1, watch: 1, streams: 2))
        #expect(pool.lease(.watch) == .open(0))
        _ = pool.connected(0, protocol: .http2)
        #expect(pool.lease(.watch) == .use(0))
        #expect(pool.lease(.watch) == .exhausted)
        #expect(pool.lease(.short) == .open(1))
        _ = pool.connected(1, protocol: .http2)
        #expect(pool.lease(.short) == .use(1))
    }

    @Test("streams spread over ready connections, least loaded first")
    func spreads() {
        var pool = UpstreamPoolState(limits: poolLimits(short: 2, streams: 3))
        _ = pool.lease(.short); _ = pool.connected(0, protocol: .http2)
        #expect(pool.lease(.short) == .use(0))
        #expect(pool.lease(.short) == .use(0))
        #expect(pool.streams(on: 0) == 3)
        #expect(pool.lease(.short) == .open(1))
        _ = pool.connected(1, protocol: .http2)
        pool.released(0); pool.released(0)
        // 1 stream on each: the tie goes to the older connection, then the other.
        #expect(pool.lease(.short) == .use(0))
        #expect(pool.lease(.short) == .use(1))
    }

    @Test("an HTTP/1.1 upstream serves one waiter per connection; the rest open their own")
    func http1Fallback() {
        var pool = UpstreamPoolState(limits: poolLimits(short: 1, streams: 3))
        #expect(pool.lease(.short) == .open(0))
        #expect(pool.lease(.short) == .wait(0))
        #expect(pool.connected(0, protocol: .http1) == 1)
        // Now known to be HTTP/1.1: one connection per request, up to connections × budget.
        #expect(pool.lease(.short) == .open(1))
        #expect(pool.lease(.short) == .open(2))
        #expect(pool.lease(.short) == .exhausted)
    }

    @Test("a closed or draining connection takes no new streams and frees its slot")
    func closedAndDraining() {
        var pool = UpstreamPoolState(limits: poolLimits(short: 1, streams: 3))
        _ = pool.lease(.short); _ = pool.connected(0, protocol: .http2)
        pool.drain(0)
        #expect(pool.lease(.short) == .open(1))
        pool.closed(1)
        #expect(pool.lease(.short) == .open(2))
    }
}

@Suite("Upstream pool state: HTTP/1.1 keep-alive")
struct UpstreamKeepAliveStateTests {
    @Test("a checked-in connection serves the next request; the most recently used one first")
    func reuse() {
        var pool = UpstreamPoolState(limits: poolLimits(watch: 1, idle: 2))
        #expect(pool.lease(.short) == .open(0))
        #expect(pool.connected(0, protocol: .http1) == 1)
        #expect(pool.lease(.short) == .open(1))
        _ = pool.connected(1, protocol: .http1)
        #expect(pool.checkIn(0) == .keep)
        #expect(pool.checkIn(1) == .keep)
        #expect(pool.lease(.short) == .use(1))
        #expect(pool.lease(.short) == .use(0))
        // Both busy: a third request opens a third connection.
        #expect(pool.lease(.short) == .open(2))
    }

    @Test("idle connections beyond the bound are closed when their request ends")
    func idleBound() {
        var pool = UpstreamPoolState(limits: poolLimits(watch: 1, idle: 1))
        _ = pool.lease(.short); _ = pool.connected(0, protocol: .http1)
        _ = pool.lease(.short); _ = pool.connected(1, protocol: .http1)
        #expect(pool.checkIn(0) == .keep)
        #expect(pool.checkIn(1) == .close)
        #expect(pool.idle[.short] == [0])
    }

    @Test("a closed or draining idle connection is never handed out again")
    func closedIdle() {
        var pool = UpstreamPoolState(limits: poolLimits(watch: 1, idle: 2))
        _ = pool.lease(.short); _ = pool.connected(0, protocol: .http1)
        _ = pool.lease(.short); _ = pool.connected(1, protocol: .http1)
        #expect(pool.checkIn(0) == .keep)
        #expect(pool.checkIn(1) == .keep)
        pool.closed(1)
        pool.drain(0)
        #expect(pool.idle[.short] == [])
        #expect(pool.lease(.short) == .open(2))
        // A connection that is gone cannot be checked in.
        #expect(pool.checkIn(1) == .close)
    }

    @Test("the short lane on HTTP/1.1 does not make the watch lane's HTTP/2 connections one request each")
    func lanesLearnTheirOwnProtocol() {
        var pool = UpstreamPoolState(limits: poolLimits(watch: 1, streams: 3, idle: 2))
        _ = pool.lease(.short); _ = pool.connected(0, protocol: .http1)
        #expect(pool.lease(.watch) == .open(1))
        #expect(pool.lease(.watch) == .wait(1))
        #expect(pool.connected(1, protocol: .http2) == 2)
        #expect(pool.lease(.watch) == .use(1))
    }
}
