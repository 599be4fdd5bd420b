import Foundation
import IsthmusKubeTypes
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
        // SNI cannot carry an IP address; NIOSSL then checks the certificate's
        // IP SANs against the connected address instead.
        let isIP = host.contains(":") || host.split(separator: ".").allSatisfy { UInt8($0) != nil }
        let target = UpstreamPool.Target(host: host, port: port, serverHostname: isIP ? nil : host,
                                         sslContext: context, connectTimeout: TimeAmount(configuration.connectTimeout))
        var pools: [ObjectIdentifier: NIOLoopBoundBox<UpstreamPool>] = [:]
        for loop in group.makeIterator() {
            pools[ObjectIdentifier(loop)] = NIOLoopBoundBox.makeBoxSendingValue(
                UpstreamPool(eventLoop: loop, target: target, limits: configuration.limits), eventLoop: loop)
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
        var sslContext: NIOSSLContext
        var connectTimeout: TimeAmount
    }

    enum Live {
        case http2(any Channel, NIOHTTP2Handler.StreamMultiplexer)
        case http1(any Channel)

        var channel: any Channel {
            switch self {
            case .http2(let channel, _), .http1(let channel): channel
            }
        }
    }

    let eventLoop: any EventLoop
    let target: Target
    private var state: UpstreamPoolState
    private var live: [UpstreamPoolState.ConnectionID: Live] = [:]
    private var waiters: [UpstreamPoolState.ConnectionID: [(UpstreamLane, EventLoopPromise<UpstreamStream>)]] = [:]
    private var connecting: [UpstreamPoolState.ConnectionID: any Channel] = [:]

    init(eventLoop: any EventLoop, target: Target, limits: UpstreamPoolLimits) {
        self.eventLoop = eventLoop
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
        case .http1(let channel):
            // One request per HTTP/1.1 connection: it is closed when the request ends.
            return eventLoop.makeSucceededFuture(UpstreamStream(channel: channel, protocol: .http1))
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

    private func connect(_ id: UpstreamPoolState.ConnectionID) {
        let target = self.target
        let ready = eventLoop.makePromise(of: Live.self)
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(target.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(NIOSSLClientHandler(context: target.sslContext, serverHostname: target.serverHostname))
                    try sync.addHandler(ApplicationProtocolNegotiationHandler { result, channel in
                        channel.eventLoop.makeCompletedFuture {
                            if case .negotiated("h2") = result {
                                let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                                    mode: .client, connectionConfiguration: .init(), streamConfiguration: .init(),
                                    inboundStreamInitializer: { stream in stream.close() })
                                ready.succeed(.http2(channel, multiplexer))
                            } else {
                                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                                ready.succeed(.http1(channel))
                            }
                        }
                    })
                }
            }
        // TCP connect is bounded by the bootstrap; the TLS handshake by this.
        let timeout = eventLoop.scheduleTask(in: target.connectTimeout) {
            ready.fail(UpstreamFailure(.connectTimeout, "TLS handshake with the upstream took too long"))
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
            case .success(let connection):
                self.live[id] = connection
                connection.channel.closeFuture.assumeIsolated().whenComplete { _ in
                    self.live[id] = nil
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
        let channels = live.values.map(\.channel) + connecting.values
        let closes = channels.map { channel in channel.close().recover { _ in } }
        return EventLoopFuture.andAllComplete(closes, on: eventLoop)
    }
}

@available(*, unavailable)
extension UpstreamPool: Sendable {}
