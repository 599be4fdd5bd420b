/// Which connections a request may ride on.
///
/// Watches live for up to half an hour; short requests (get, list, discovery)
/// for milliseconds. On one connection a few hundred open watches would use
/// up the stream budget and share the connection's flow-control window with
/// every list, so watches get connections of their own and a `get` never
/// queues behind them.
public enum UpstreamLane: Sendable, Hashable {
    case short
    case watch
}

/// The wire protocol a connection negotiated by ALPN.
public enum UpstreamProtocol: Sendable, Hashable {
    /// Many concurrent streams per connection.
    case http2
    /// One request at a time per connection. Short requests keep the
    /// connection for the next one (keep-alive); a watch closes it.
    case http1
}

/// Bounds of one event loop's upstream pool.
public struct UpstreamPoolLimits: Sendable, Hashable {
    /// HTTP/2 connections for short requests.
    public var shortConnections = 4
    /// HTTP/2 connections for watches, opened as needed: 64 x 100 streams per
    /// event loop, above the explicit ``WatchBudget`` limits (10,000 by
    /// default), so that this is a backstop, never the ceiling.
    public var watchConnections = 64
    /// Concurrent streams assumed on an HTTP/2 connection until the API server's
    /// SETTINGS_MAX_CONCURRENT_STREAMS says how many it allows (kube-apiserver's
    /// `--http2-max-streams-per-connection`, Go's default 250): from then on that
    /// is the connection's budget, and the assumption for the lane's next ones.
    public var streamsPerConnection = 100
    /// Idle HTTP/1.1 keep-alive connections kept per event loop; one more is
    /// closed when its request ends, so a burst does not leave sockets behind.
    public var maxIdleConnections = 32

    public init() {}

    /// At most this many connections in `lane` (HTTP/1.1 carries one request each,
    /// so it gets as many connections as HTTP/2 would get streams).
    func maxConnections(_ lane: UpstreamLane, protocol: UpstreamProtocol?) -> Int {
        let connections = lane == .short ? shortConnections : watchConnections
        return `protocol` == .http1 ? connections * streamsPerConnection : connections
    }
}

/// Decides which upstream connection a new request uses, and when to open
/// one. Pure and loop-confined by its owner (``UpstreamPool``), so its rules
/// are tested without sockets.
struct UpstreamPoolState {
    typealias ConnectionID = Int

    enum ConnectionState: Equatable {
        case connecting
        case ready(UpstreamProtocol)
        /// GOAWAY or failure: no new streams, existing ones finish.
        case draining
    }

    struct Connection: Equatable {
        var lane: UpstreamLane
        var state: ConnectionState
        /// Streams leased (including those waiting for the connection to be ready).
        var streams: Int
        /// SETTINGS_MAX_CONCURRENT_STREAMS from the API server, once received.
        var streamLimit: Int? = nil
    }

    enum LeaseDecision: Equatable {
        /// A ready connection has room: open a stream on it now.
        case use(ConnectionID)
        /// A connection is being opened and has room: wait for it.
        case wait(ConnectionID)
        /// Open a new connection and wait for it.
        case open(ConnectionID)
        /// Every connection the lane may have is at its budget.
        case exhausted
    }

    let limits: UpstreamPoolLimits
    private(set) var connections: [ConnectionID: Connection] = [:]
    private var nextID = 0
    /// Learned per lane from its first connection (the short lane may ask for
    /// HTTP/1.1 and the watch lane for h2): an HTTP/1.1-only upstream stays one.
    private(set) var upstreamProtocol: [UpstreamLane: UpstreamProtocol] = [:]
    /// Ready HTTP/1.1 connections with no request, per lane, most recently
    /// used last. The last is reused first, so the others stay idle long
    /// enough to be closed by the idle timeout after a burst.
    private(set) var idle: [UpstreamLane: [ConnectionID]] = [:]
    /// The API server's last SETTINGS_MAX_CONCURRENT_STREAMS per lane: what a
    /// connection that has not sent its own yet is assumed to allow.
    private(set) var learnedStreamLimit: [UpstreamLane: Int] = [:]

    init(limits: UpstreamPoolLimits) {
        self.limits = limits
    }

    private func capacity(_ connection: Connection) -> Int {
        let http2Streams = connection.streamLimit ?? learnedStreamLimit[connection.lane] ?? limits.streamsPerConnection
        return switch connection.state {
        case .ready(.http1): 1
        case .ready(.http2): http2Streams
        // Optimistic: an unknown connection is assumed to be HTTP/2 unless the
        // upstream already showed it is not.
        case .connecting: upstreamProtocol[connection.lane] == .http1 ? 1 : http2Streams
        case .draining: 0
        }
    }

    /// The API server's SETTINGS_MAX_CONCURRENT_STREAMS on `id`: the budget of
    /// that connection from now on (streams already over it finish; NIO holds
    /// their HEADERS until one ends), and the lane's assumption for new ones.
    mutating func remoteStreamLimit(_ id: ConnectionID, _ limit: Int) {
        guard let lane = connections[id]?.lane else { return }
        let limit = max(0, limit)
        connections[id]?.streamLimit = limit
        learnedStreamLimit[lane] = max(1, limit)
    }

    /// Leases a stream in `lane`: the least-loaded connection with room, so load
    /// spreads instead of filling one connection to its budget first.
    mutating func lease(_ lane: UpstreamLane) -> LeaseDecision {
        if upstreamProtocol[lane] == .http1 {
            // One request per connection: the only room is on an idle one
            // (a connecting one already has its request).
            if let id = idle[lane]?.popLast() {
                connections[id]?.streams = 1
                return .use(id)
            }
            return openConnection(lane)
        }
        var best: (id: ConnectionID, connection: Connection)?
        for (id, connection) in connections where connection.lane == lane && connection.streams < capacity(connection) {
            if let current = best {
                if connection.streams < current.connection.streams
                    || (connection.streams == current.connection.streams && id < current.id) {
                    best = (id, connection)
                }
            } else {
                best = (id, connection)
            }
        }
        if let best {
            connections[best.id]?.streams += 1
            return best.connection.state == .connecting ? .wait(best.id) : .use(best.id)
        }
        return openConnection(lane)
    }

    private mutating func openConnection(_ lane: UpstreamLane) -> LeaseDecision {
        let open = connections.values.filter { $0.lane == lane && $0.state != .draining }.count
        guard open < limits.maxConnections(lane, protocol: upstreamProtocol[lane]) else { return .exhausted }
        let id = nextID
        nextID += 1
        connections[id] = Connection(lane: lane, state: .connecting, streams: 1)
        return .open(id)
    }

    /// The connection finished TLS and ALPN. Returns how many of its waiting
    /// leases it can serve; the rest must lease again (an HTTP/1.1 connection
    /// serves one).
    mutating func connected(_ id: ConnectionID, protocol: UpstreamProtocol) -> Int {
        guard var connection = connections[id] else { return 0 }
        upstreamProtocol[connection.lane] = `protocol`
        // A GOAWAY before it was ready keeps it draining: no capacity, so it serves none of its waiters.
        if connection.state != .draining { connection.state = .ready(`protocol`) }
        let served = min(connection.streams, capacity(connection))
        connection.streams = served
        connections[id] = connection
        return served
    }

    /// A stream on `id` is over. For HTTP/1.1, the request is over and the
    /// connection may serve the next one (``checkIn(_:)``) or is closed.
    mutating func released(_ id: ConnectionID) {
        guard var connection = connections[id] else { return }
        connection.streams = max(0, connection.streams - 1)
        connections[id] = connection
    }

    enum CheckIn: Equatable {
        /// Kept idle for the next request.
        case keep
        /// Over ``UpstreamPoolLimits/maxIdleConnections``, or no longer usable: close it.
        case close
    }

    /// An HTTP/1.1 request on `id` ended cleanly (the whole response read, no
    /// `Connection: close`): keep the connection for the next request, within
    /// the idle bound.
    mutating func checkIn(_ id: ConnectionID) -> CheckIn {
        guard var connection = connections[id], connection.state == .ready(.http1) else { return .close }
        guard idle[connection.lane, default: []].count < limits.maxIdleConnections else {
            drain(id)
            return .close
        }
        connection.streams = 0
        connections[id] = connection
        idle[connection.lane, default: []].append(id)
        return .keep
    }

    /// No new streams on `id` (GOAWAY, an error, an idle timeout); its open
    /// streams finish, and it no longer counts against the lane's limit so a
    /// replacement can open.
    mutating func drain(_ id: ConnectionID) {
        guard let lane = connections[id]?.lane else { return }
        connections[id]?.state = .draining
        idle[lane]?.removeAll { $0 == id }
    }

    /// The connection is gone (closed, or it never connected).
    mutating func closed(_ id: ConnectionID) {
        guard let lane = connections.removeValue(forKey: id)?.lane else { return }
        idle[lane]?.removeAll { $0 == id }
    }

    func streams(on id: ConnectionID) -> Int? { connections[id]?.streams }

}
