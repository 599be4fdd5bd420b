import Foundation
import IsthmusKubeTypes
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS

/// Where and how the proxy reaches the API server. Plain data, checked once.
public struct UpstreamConfiguration: Sendable {
    /// `https://host[:port]`; in a cluster `https://kubernetes.default.svc`.
    public var url: String
    /// The cluster CA (PEM) the API server's certificate must chain to.
    public var caCertificatePEM: String
    /// The proxy's ServiceAccount token file (re-read when it changes).
    public var tokenFile: String
    /// ALPN offers, most preferred first; HTTP/1.1 is the fallback.
    public var applicationProtocols = ["h2", "http/1.1"]
    /// Short requests (get, list, discovery) over HTTP/1.1 keep-alive
    /// connections, one request at a time each, as nginx does: cheaper per
    /// request than a new HTTP/2 stream, and a LIST gets a connection's whole
    /// TCP window instead of a share of one HTTP/2 flow-control window.
    /// Watches stay on HTTP/2 (``applicationProtocols``). False: short
    /// requests use ``applicationProtocols`` too.
    public var shortRequestsOverHTTP1 = true
    /// An idle keep-alive connection is closed after this long.
    public var idleConnectionTimeout: Duration = .seconds(30)
    /// TCP connect plus TLS handshake; beyond it the client gets a 504.
    public var connectTimeout: Duration = .seconds(5)
    /// From sending a request to its response head; beyond it a 504.
    public var responseHeaderTimeout: Duration = .seconds(30)
    /// How often the token file's modification time is checked.
    public var tokenRefreshInterval: Duration = .seconds(5)
    public var limits = UpstreamPoolLimits()

    public init(url: String, caCertificatePEM: String, tokenFile: String) {
        self.url = url
        self.caCertificatePEM = caCertificatePEM
        self.tokenFile = tokenFile
    }
}

/// Why the upstream could not answer, each as the `Status` the client gets.
public struct UpstreamFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case invalidConfiguration
        case connectFailed
        case connectTimeout
        case responseHeaderTimeout
        case closedBeforeResponse
        case poolExhausted
        /// The ServiceAccount token file is missing or empty.
        case noCredentials
        /// The API server answered 401 to the proxy's own ServiceAccount token:
        /// the proxy's fault, never the peer's, so not relayed as a 401.
        case credentialsRejected
        /// The lookup of a Secret before a get (``ProtectedObjects``) did not
        /// answer with a list: the get is not forwarded unchecked.
        case secretLookupFailed
    }

    public var kind: Kind
    /// For logs; never carries a token.
    public var detail: String

    public init(_ kind: Kind, _ detail: String = "") {
        self.kind = kind
        self.detail = detail
    }

    public var description: String { detail.isEmpty ? "\(kind)" : "\(kind): \(detail)" }

    /// The answer to the client. kube-apiserver has no 502 reason; client-go
    /// classifies by code, so 502/503/504 retry as an API server's would.
    public var status: Status {
        switch kind {
        case .invalidConfiguration, .closedBeforeResponse:
            Status(message: "the upstream API server closed the connection before answering", reason: "InternalError",
                   details: Status.Details(), code: 502)
        case .credentialsRejected:
            Status(message: "the API server rejected the proxy's credentials", reason: "InternalError",
                   details: Status.Details(), code: 502)
        case .secretLookupFailed:
            Status(message: "the proxy could not check this Secret against what is never served to a peer; see the proxy's log",
                   reason: "InternalError", details: Status.Details(), code: 502)
        case .connectFailed, .noCredentials:
            Status(message: "the server is currently unable to handle the request", reason: "ServiceUnavailable",
                   details: Status.Details(), code: 503)
        case .connectTimeout, .responseHeaderTimeout:
            Status(message: "the upstream API server did not answer in time", reason: "Timeout",
                   details: Status.Details(), code: 504)
        case .poolExhausted:
            Status.tooManyRequests()
        }
    }
}

/// An open request channel to the upstream: an HTTP/2 stream channel or an
/// HTTP/1.1 connection, either way reading `HTTPClientResponsePart` and
/// writing `HTTPClientRequestPart`. Closing it resets the stream (HTTP/2
/// RST_STREAM) or closes the connection (HTTP/1.1).
public struct UpstreamStream: Sendable {
    public var channel: any Channel
    public var `protocol`: UpstreamProtocol
    /// Set when the stream is a keep-alive HTTP/1.1 connection of the pool.
    let keepAlive: KeepAlive?

    struct KeepAlive: Sendable {
        let pool: NIOLoopBoundBox<UpstreamPool>
        let id: UpstreamPoolState.ConnectionID
        /// It served a request before this one, so the API server may have
        /// closed it meanwhile: a request that gets no answer on it may be
        /// sent again on another connection (all the proxy sends are reads).
        let reused: Bool
    }

    init(channel: any Channel, protocol: UpstreamProtocol, keepAlive: KeepAlive? = nil) {
        self.channel = channel
        self.protocol = `protocol`
        self.keepAlive = keepAlive
    }

    /// Whether the request must ask the API server to close the connection
    /// after it (an HTTP/1.1 connection that is not kept alive).
    public var closesAfterRequest: Bool { `protocol` == .http1 && keepAlive == nil }

    /// Whether the connection served an earlier request (see ``KeepAlive/reused``).
    public var isReused: Bool { keepAlive?.reused ?? false }

    /// The request on this stream is over. `reusable`: its whole response was
    /// read and did not ask to close, so a keep-alive connection goes back to
    /// the pool (after `handler`, the request's own, leaves its pipeline);
    /// anything else is closed (an HTTP/2 stream that ended is already closed).
    /// Call on the channel's event loop.
    public func finish(reusable: Bool, removing handler: (any RemovableChannelHandler)? = nil) {
        guard reusable, let keepAlive, channel.isActive else {
            channel.close(promise: nil)
            return
        }
        if let handler {
            channel.pipeline.syncOperations.removeHandler(handler, promise: nil)
        }
        keepAlive.pool.value.checkIn(keepAlive.id)
    }
}

/// The proxy's client to the API server: one ``UpstreamPool`` per event loop,
/// so a request's upstream stream lives on its client's loop and relaying
/// takes no lock and no thread hop.
public final class UpstreamClient: Sendable {
    public let configuration: UpstreamConfiguration
    public let token: ServiceAccountToken
    /// `host[:port]` for `Host` / `:authority`.
    public let authority: String
    private let pools: [ObjectIdentifier: NIOLoopBoundBox<UpstreamPool>]
    /// Connections opened and closed idle, across the loops (rare events; a
    /// request's own counts stay on its loop).
    let sharedStatistics = NIOLockedValueBox(UpstreamPoolStatistics())

    public init(configuration: UpstreamConfiguration, group: any EventLoopGroup) throws {
        guard let components = URLComponents(string: configuration.url), components.scheme == "https",
              let host = components.host, !host.isEmpty
        else {
            throw UpstreamFailure(.invalidConfiguration, "upstream URL must be https://host[:port], got \(configuration.url)")
        }
        let port = components.port ?? 443
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(configuration.caCertificatePEM.utf8)))
        tls.applicationProtocols = configuration.applicationProtocols
        // Closing an HTTP/1.1 upstream connection is how a cancelled request is
        // cancelled; NIOSSL would wait up to 5 s for the peer's close_notify
        // before closing the socket, and a server busy writing may never send it.
        tls.shutdownTimeout = .milliseconds(200)
        let context = try NIOSSLContext(configuration: tls)
        var shortContext = context
        if configuration.shortRequestsOverHTTP1 {
            tls.applicationProtocols = ["http/1.1"]
            shortContext = try NIOSSLContext(configuration: tls)
        }
        // SNI cannot carry an IP address; NIOSSL then checks the certificate's
        // IP SANs against the connected address instead.
        let isIP = host.contains(":") || host.split(separator: ".").allSatisfy { UInt8($0) != nil }
        let target = UpstreamPool.Target(host: host, port: port, serverHostname: isIP ? nil : host,
                                         sslContexts: [.short: shortContext, .watch: context],
                                         connectTimeout: TimeAmount(configuration.connectTimeout),
                                         idleTimeout: TimeAmount(configuration.idleConnectionTimeout))
        var pools: [ObjectIdentifier: NIOLoopBoundBox<UpstreamPool>] = [:]
        for loop in group.makeIterator() {
            let box = NIOLoopBoundBox.makeBoxSendingValue(
                UpstreamPool(eventLoop: loop, target: target, limits: configuration.limits, shared: sharedStatistics),
                eventLoop: loop)
            loop.execute { box.value.box = box }
            pools[ObjectIdentifier(loop)] = box
        }
        self.pools = pools
        self.configuration = configuration
        self.token = ServiceAccountToken(path: configuration.tokenFile)
        self.authority = port == 443 ? (host.contains(":") ? "[\(host)]" : host)
            : (host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
    }

    /// Opens a request channel on `eventLoop`'s pool. Call on `eventLoop`.
    public func openStream(on eventLoop: any EventLoop, lane: UpstreamLane) -> EventLoopFuture<UpstreamStream> {
        guard let pool = pools[ObjectIdentifier(eventLoop)] else {
            return eventLoop.makeFailedFuture(UpstreamFailure(.invalidConfiguration, "event loop outside the proxy's group"))
        }
        return pool.value.openStream(lane: lane)
    }

    /// The pools' counts, summed over the event loops.
    public func statistics() -> EventLoopFuture<UpstreamPoolStatistics> {
        let futures = pools.values.map { box in box.eventLoop.submit { box.value.reusedRequests } }
        let loop = pools.values.first?.eventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
        let shared = sharedStatistics
        return EventLoopFuture.reduce(0, futures, on: loop, +).map { reused in
            var total = shared.withLockedValue { $0 }
            total.reusedRequests = reused
            return total
        }
    }

    /// Closes every upstream connection. Call once, at shutdown.
    public func shutdown() -> EventLoopFuture<Void> {
        token.stopRefreshing()
        let futures = pools.values.map { box in
            box.eventLoop.flatSubmit { box.value.closeAll() }
        }
        return futures.first.map { EventLoopFuture.andAllComplete(futures, on: $0.eventLoop) }
            ?? MultiThreadedEventLoopGroup.singleton.any().makeSucceededVoidFuture()
    }
}

/// One event loop's upstream connections: the I/O shell around
/// ``UpstreamPoolState``. Loop-confined.
final class UpstreamPool {
    struct Target: Sendable {
        var host: String
        var port: Int
        var serverHostname: String?
        /// Per lane: the short lane's may offer HTTP/1.1 only.
        var sslContexts: [UpstreamLane: NIOSSLContext]
        var connectTimeout: TimeAmount
        var idleTimeout: TimeAmount
    }

    enum Live {
        case http2(any Channel, NIOHTTP2Handler.StreamMultiplexer)
        case http1(any Channel, UpstreamIdleGuard)

        /// What the connection's initializer reports; the idle guard is looked up on the loop.
        enum Negotiated: Sendable {
            case http2(any Channel, NIOHTTP2Handler.StreamMultiplexer)
            case http1(any Channel)
        }

        var channel: any Channel {
            switch self {
            case .http2(let channel, _), .http1(let channel, _): channel
            }
        }
    }

    let eventLoop: any EventLoop
    let target: Target
    /// This pool's own box, which a keep-alive ``UpstreamStream`` carries to check its connection in.
    weak var box: NIOLoopBoundBox<UpstreamPool>?
    private var state: UpstreamPoolState
    private var live: [UpstreamPoolState.ConnectionID: Live] = [:]
    private var waiters: [UpstreamPoolState.ConnectionID: [(UpstreamLane, EventLoopPromise<UpstreamStream>)]] = [:]
    private var connecting: [UpstreamPoolState.ConnectionID: any Channel] = [:]
    /// Requests each keep-alive connection has carried (0 while it serves its first).
    private var served: [UpstreamPoolState.ConnectionID: Int] = [:]
    /// When each idle keep-alive connection went idle.
    private var idleSince: [UpstreamPoolState.ConnectionID: NIODeadline] = [:]
    private var idleSweep: RepeatedTask?
    private let shared: NIOLockedValueBox<UpstreamPoolStatistics>
    /// Requests sent on a keep-alive connection that had served one before.
    private(set) var reusedRequests = 0

    init(eventLoop: any EventLoop, target: Target, limits: UpstreamPoolLimits, shared: NIOLockedValueBox<UpstreamPoolStatistics>) {
        self.eventLoop = eventLoop
        self.shared = shared
        self.target = target
        self.state = UpstreamPoolState(limits: limits)
    }

    func openStream(lane: UpstreamLane) -> EventLoopFuture<UpstreamStream> {
        eventLoop.assertInEventLoop()
        switch state.lease(lane) {
        case .use(let id):
            return makeStream(on: id)
        case .wait(let id):
            let promise = eventLoop.makePromise(of: UpstreamStream.self)
            waiters[id, default: []].append((lane, promise))
            return promise.futureResult
        case .open(let id):
            let promise = eventLoop.makePromise(of: UpstreamStream.self)
            waiters[id] = [(lane, promise)]
            connect(id)
            return promise.futureResult
        case .exhausted:
            return eventLoop.makeFailedFuture(UpstreamFailure(.poolExhausted, "every upstream \(lane) connection is at its stream budget"))
        }
    }

    private func makeStream(on id: UpstreamPoolState.ConnectionID) -> EventLoopFuture<UpstreamStream> {
        guard let connection = live[id] else {
            state.released(id)
            return eventLoop.makeFailedFuture(UpstreamFailure(.connectFailed, "upstream connection went away"))
        }
        switch connection {
        case .http1(let channel, let idleGuard):
            idleGuard.leased = true
            guard state.connections[id]?.lane == .short, let box else {
                // A watch over HTTP/1.1 has the connection to itself, closed when it ends.
                return eventLoop.makeSucceededFuture(UpstreamStream(channel: channel, protocol: .http1))
            }
            idleSince[id] = nil
            let count = served[id, default: 0]
            served[id] = count + 1
            if count > 0 { reusedRequests += 1 }
            return eventLoop.makeSucceededFuture(UpstreamStream(
                channel: channel, protocol: .http1, keepAlive: .init(pool: box, id: id, reused: count > 0)))
        case .http2(_, let multiplexer):
            let promise = eventLoop.makePromise(of: (any Channel).self)
            multiplexer.createStreamChannel(promise: promise) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .https))
                }
            }
            return promise.futureResult.assumeIsolated().flatMapErrorThrowing { error in
                // GOAWAY received or the connection failing: send new streams elsewhere.
                self.state.released(id)
                self.state.drain(id)
                throw UpstreamFailure(.connectFailed, "could not open an HTTP/2 stream: \(error)")
            }.map { stream in
                stream.closeFuture.assumeIsolated().whenComplete { _ in self.state.released(id) }
                return UpstreamStream(channel: stream, protocol: .http2)
            }.nonisolated()
        }
    }

    /// A keep-alive request on `id` ended cleanly: the connection waits for the next one.
    func checkIn(_ id: UpstreamPoolState.ConnectionID) {
        guard case .http1(let channel, let idleGuard) = live[id] else { return }
        idleGuard.leased = false
        switch state.checkIn(id) {
        case .keep:
            idleSince[id] = .now()
            if idleSweep == nil {
                let interval = TimeAmount.nanoseconds(max(target.idleTimeout.nanoseconds / 3, 10_000_000))
                let bound = NIOLoopBound(self, eventLoop: eventLoop)
                idleSweep = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                    bound.value.closeIdleConnections()
                }
            }
        case .close:
            channel.close(promise: nil)
        }
    }

    /// The API server sent GOAWAY on `id`: no new streams there (its open ones
    /// finish); the next lease opens another connection.
    fileprivate func goAwayReceived(_ id: UpstreamPoolState.ConnectionID) {
        state.drain(id)
        shared.withLockedValue { $0.goAwaysReceived += 1 }
    }

    /// Closes keep-alive connections idle for longer than the idle timeout.
    private func closeIdleConnections() {
        let now = NIODeadline.now()
        for (id, since) in idleSince where now - since >= target.idleTimeout {
            idleSince[id] = nil
            state.drain(id)
            shared.withLockedValue { $0.idleClosed += 1 }
            live[id]?.channel.close(promise: nil)
        }
    }

    private func connect(_ id: UpstreamPoolState.ConnectionID) {
        let target = self.target
        let lane = state.connections[id]?.lane ?? .short
        let sslContext = target.sslContexts[lane] ?? target.sslContexts[.watch]!
        let ready = eventLoop.makePromise(of: Live.Negotiated.self)
        let pool = NIOLoopBound(self, eventLoop: eventLoop)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(target.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            // One socket read of at most 128 KiB per wakeup on a keep-alive connection:
            // what is read before the relay can hold the next read for a slow client
            // is what the proxy buffers for it (NIO's default, 4 reads of 64 KiB, let
            // a slow reader of a big LIST cost ~0.4 MB); 128 KiB still takes a
            // 100 KiB LIST in one read. HTTP/2 is bounded by its windows.
            .channelOption(.maxMessagesPerRead, value: UInt(lane == .short ? 1 : 4))
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 64, initial: 2048, maximum: lane == .short ? 128 * 1024 : 64 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: target.serverHostname))
                    try sync.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
                        channel.eventLoop.makeCompletedFuture {
                            if case .negotiated("h2") = result {
                                let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                                    mode: .client, connectionConfiguration: .init(), streamConfiguration: .init(),
                                    inboundStreamInitializer: { stream in stream.close() })
                                // Ready once the server's SETTINGS arrived (its preface, sent at once): the
                                // streams waiting for this connection are then counted against its real limit.
                                try channel.pipeline.syncOperations.addHandler(UpstreamConnectionObserver(
                                    onSettings: { limit, first in
                                        if let limit { pool.value.state.remoteStreamLimit(id, limit) }
                                        if first { ready.succeed(.http2(channel, multiplexer)) }
                                    },
                                    onGoAway: { pool.value.goAwayReceived(id) }))
                            } else {
                                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                                try channel.pipeline.syncOperations.addHandler(UpstreamIdleGuard())
                                ready.succeed(.http1(channel))
                            }
                        }
                    })
                }
            }
        // TCP connect is bounded by the bootstrap; the TLS handshake and the server's first SETTINGS by this.
        let timeout = eventLoop.scheduleTask(in: target.connectTimeout) {
            ready.fail(UpstreamFailure(.connectTimeout, "the TLS handshake (or, over HTTP/2, the SETTINGS that follow it) with the upstream took too long"))
        }
        bootstrap.connect(host: target.host, port: target.port).assumeIsolated().whenComplete { result in
            switch result {
            case .success(let channel):
                self.connecting[id] = channel
                // A handshake failure closes the channel before ALPN completes;
                // a timeout that fired first closes the late channel.
                channel.closeFuture.whenComplete { _ in
                    ready.fail(UpstreamFailure(.connectFailed, "the upstream closed the connection during the TLS handshake"))
                }
                ready.futureResult.whenFailure { _ in channel.close(promise: nil) }
            case .failure(let error):
                if let timeout = error as? ChannelError, case .connectTimeout = timeout {
                    ready.fail(UpstreamFailure(.connectTimeout, "TCP connect to the upstream timed out"))
                } else {
                    ready.fail(UpstreamFailure(.connectFailed, "\(error)"))
                }
            }
        }
        ready.futureResult.assumeIsolated().whenComplete { result in
            timeout.cancel()
            self.connecting[id] = nil
            switch result {
            case .success(let negotiated):
                let connection: Live
                switch negotiated {
                case .http2(let channel, let multiplexer):
                    connection = .http2(channel, multiplexer)
                case .http1(let channel):
                    guard let idleGuard = try? channel.pipeline.syncOperations.handler(type: UpstreamIdleGuard.self) else {
                        channel.close(promise: nil)
                        self.state.closed(id)
                        for (_, promise) in self.waiters.removeValue(forKey: id) ?? [] {
                            promise.fail(UpstreamFailure(.connectFailed, "the upstream connection closed as it opened"))
                        }
                        return
                    }
                    connection = .http1(channel, idleGuard)
                }
                self.live[id] = connection
                self.shared.withLockedValue {
                    $0.connectionsOpened += 1
                    $0.connectionsOpenedByLane[lane, default: 0] += 1
                    $0.openConnections[lane, default: 0] += 1
                }
                connection.channel.closeFuture.assumeIsolated().whenComplete { _ in
                    self.shared.withLockedValue { $0.openConnections[lane, default: 0] -= 1 }
                    self.live[id] = nil
                    self.served[id] = nil
                    self.idleSince[id] = nil
                    self.state.closed(id)
                }
                let protocolUsed: UpstreamProtocol
                if case .http1 = connection { protocolUsed = .http1 } else { protocolUsed = .http2 }
                let served = self.state.connected(id, protocol: protocolUsed)
                let waiting = self.waiters.removeValue(forKey: id) ?? []
                for (index, (lane, promise)) in waiting.enumerated() {
                    if index < served {
                        self.makeStream(on: id).cascade(to: promise)
                    } else {
                        self.openStream(lane: lane).cascade(to: promise)
                    }
                }
            case .failure(let error):
                self.state.closed(id)
                for (_, promise) in self.waiters.removeValue(forKey: id) ?? [] { promise.fail(error) }
            }
        }
    }

    func closeAll() -> EventLoopFuture<Void> {
        idleSweep?.cancel()
        idleSweep = nil
        let channels = live.values.map(\.channel) + connecting.values
        let closes = channels.map { channel in channel.close().recover { _ in } }
        return EventLoopFuture.andAllComplete(closes, on: eventLoop)
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}

/// Counts of one event loop's pool, for tests and the proxy's statistics.
public struct UpstreamPoolStatistics: Sendable, Hashable {
    /// Upstream connections that finished TLS and ALPN.
    public var connectionsOpened = 0
    /// Requests sent on a keep-alive connection that had served one before.
    public var reusedRequests = 0
    /// Keep-alive connections closed by the idle timeout.
    public var idleClosed = 0
    /// ``connectionsOpened`` by lane: watch connections open on demand.
    public var connectionsOpenedByLane: [UpstreamLane: Int] = [:]
    /// Connections open now, by lane.
    public var openConnections: [UpstreamLane: Int] = [:]
    /// GOAWAY frames received from the API server.
    public var goAwaysReceived = 0
    public init(connectionsOpened: Int = 0, reusedRequests: Int = 0, idleClosed: Int = 0) {
        self.connectionsOpened = connectionsOpened
        self.reusedRequests = reusedRequests
        self.idleClosed = idleClosed
    }
}

/// Reads the frames of stream 0 on an upstream HTTP/2 connection (they pass
/// the multiplexer to the connection's pipeline):
/// - SETTINGS_MAX_CONCURRENT_STREAMS, so the pool's stream budget per connection
///   is the API server's, not a constant: beyond it NIO would hold a new stream's
///   HEADERS until another ends, and a watch opened there would wait for one to close;
/// - GOAWAY, so the pool sends new streams to another connection at once
///   instead of finding out when opening one fails (a 503 for that request);
///   the streams already open finish.
final class UpstreamConnectionObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame

    /// Each SETTINGS (not its ACK): the limit it sets, if it sets one, and
    /// whether it is the server's first.
    private let onSettings: (_ maxConcurrentStreams: Int?, _ first: Bool) -> Void
    private let onGoAway: () -> Void
    private var seenFirst = false

    init(onSettings: @escaping (_ maxConcurrentStreams: Int?, _ first: Bool) -> Void,
         onGoAway: @escaping () -> Void) {
        self.onSettings = onSettings
        self.onGoAway = onGoAway
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .settings(.settings(let settings)):
            let first = !seenFirst
            seenFirst = true
            onSettings(settings.last(where: { $0.parameter == .maxConcurrentStreams })?.value, first)
        case .goAway:
            onGoAway()
        default:
            break
        }
        context.fireChannelRead(data)
    }
}

/// The last permanent handler of a keep-alive HTTP/1.1 upstream connection:
/// a response that arrives while no request is out cannot belong to the
/// next request, so the connection is closed rather than letting it be read
/// as that request's answer (NIO's decoder reports it as an unsolicited
/// response, or this handler sees it while idle).
final class UpstreamIdleGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    var leased = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard leased else {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    /// A decoding error (NIO's decoder refuses a response to no request, too)
    /// leaves the connection's framing unknown: it serves nothing more.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension UpstreamIdleGuard: Sendable {}
