/// The decisions of relaying one request to the upstream and its response
/// back, apart from the channels: ``ProxyHandler`` feeds it events and does
/// what it answers. One instance serves the requests of an HTTP/1.1
/// connection in turn (it returns to `idle`), or the one request of an HTTP/2 stream.
///
/// Backpressure: the upstream channel asks to read (its `read()` passes the
/// relay); while the client cannot take more, the read is held, so the
/// upstream's flow-control window (HTTP/2) or TCP window (HTTP/1.1) fills and
/// the API server stops sending. The client's writability change releases it.
struct RelayStateMachine {
    enum State: Equatable {
        /// No request in flight.
        case idle
        /// Admitted; the upstream stream is being opened.
        case connecting
        /// The request went upstream; no response head yet.
        case awaitingHead
        /// Relaying the response body.
        case streaming(clientWritable: Bool, readHeld: Bool)
        /// The client went away; nothing more is written to it.
        case closed
    }

    private(set) var state = State.idle

    /// Whether a new request may start (an HTTP/1.1 client sends the next one
    /// only after the previous response; an HTTP/2 stream carries one).
    var isIdle: Bool { state == .idle }

    mutating func admitted() {
        if state == .idle { state = .connecting }
    }

    enum OnUpstreamOpened: Equatable {
        case sendRequest
        /// The client left while the stream was being opened.
        case closeUpstream
    }

    mutating func upstreamOpened() -> OnUpstreamOpened {
        guard state == .connecting else { return .closeUpstream }
        state = .awaitingHead
        return .sendRequest
    }

    enum OnUpstreamFailure: Equatable {
        /// Answer with the failure's Status (no response head was sent yet).
        case respond
        case ignore
    }

    /// The upstream could not be opened, or gave no head in time.
    mutating func upstreamFailed() -> OnUpstreamFailure {
        switch state {
        case .connecting, .awaitingHead:
            state = .idle
            return .respond
        case .idle, .streaming, .closed:
            return .ignore
        }
    }

    enum OnUpstreamHead: Equatable {
        case forward
        case drop
    }

    mutating func upstreamHead(clientWritable: Bool) -> OnUpstreamHead {
        guard state == .awaitingHead else { return .drop }
        state = .streaming(clientWritable: clientWritable, readHeld: false)
        return .forward
    }

    enum OnUpstreamBody: Equatable {
        case forward
        case drop
    }

    func upstreamBody() -> OnUpstreamBody {
        if case .streaming = state { return .forward }
        return .drop
    }

    enum OnUpstreamReadRequest: Equatable {
        case read
        /// Hold it until the client can take more.
        case hold
    }

    mutating func upstreamWantsRead() -> OnUpstreamReadRequest {
        guard case .streaming(let writable, _) = state else { return .read }
        if writable { return .read }
        state = .streaming(clientWritable: false, readHeld: true)
        return .hold
    }

    enum OnClientWritability: Equatable {
        case resumeReading
        case none
    }

    mutating func clientWritabilityChanged(writable: Bool) -> OnClientWritability {
        guard case .streaming(_, let held) = state else { return .none }
        state = .streaming(clientWritable: writable, readHeld: held && !writable)
        return writable && held ? .resumeReading : .none
    }

    enum OnUpstreamEnd: Equatable {
        /// End the client's response; the request is over.
        case forwardEnd
        case drop
    }

    mutating func upstreamEnd() -> OnUpstreamEnd {
        guard case .streaming = state else { return .drop }
        state = .idle
        return .forwardEnd
    }

    enum OnUpstreamClosed: Equatable {
        case none
        /// Closed before a head: answer 502.
        case respondBadGateway
        /// Closed mid-body: the response cannot end cleanly, so the client's
        /// connection (HTTP/1.1) or stream (HTTP/2) is closed and it re-requests.
        case closeClient
        /// Closed between two whole watch events: end the client's response
        /// as the API server ends a watch, so client-go re-watches from its
        /// last resourceVersion (no error, no re-list).
        case endResponse
    }

    /// `betweenWatchEvents`: the response is a watch whose every relayed event
    /// is whole, so nothing the client holds is cut.
    mutating func upstreamClosed(betweenWatchEvents: Bool = false) -> OnUpstreamClosed {
        switch state {
        case .connecting:
            // The stream is not ours yet; its open fails and says why.
            return .none
        case .awaitingHead:
            state = .idle
            return .respondBadGateway
        case .streaming where betweenWatchEvents:
            state = .idle
            return .endResponse
        case .streaming:
            state = .closed
            return .closeClient
        case .idle, .closed:
            return .none
        }
    }

    enum OnClientClosed: Equatable {
        case closeUpstream
        case none
    }

    mutating func clientClosed() -> OnClientClosed {
        let previous = state
        state = .closed
        switch previous {
        case .awaitingHead, .streaming: return .closeUpstream
        // `.connecting`: the open completes later and `upstreamOpened` closes it.
        case .idle, .connecting, .closed: return .none
        }
    }

    enum OnWatchDeadline: Equatable {
        /// End the client's response cleanly and close the upstream stream, so
        /// client-go re-watches from its last resourceVersion.
        case endResponse
        case none
    }

    mutating func watchDeadline() -> OnWatchDeadline {
        guard case .streaming = state else { return .none }
        state = .idle
        return .endResponse
    }
}

/// How long a watch may run through the proxy: the cap minus up to
/// `jitter` of it, so watches opened together (after a proxy restart) do
/// not all end, and re-list, at the same moment.
public struct WatchLimit: Sendable, Hashable {
    public var maximum: Duration
    /// Fraction of `maximum` (0...1) the actual limit may be shorter by.
    public var jitter: Double

    public init(maximum: Duration = .seconds(1800), jitter: Double = 0.1) {
        self.maximum = maximum
        self.jitter = min(max(jitter, 0), 1)
    }

    /// The limit for one watch; `unit` is a random number in 0..<1.
    public func duration(unit: Double) -> Duration {
        let fraction = 1 - jitter * min(max(unit, 0), 1)
        return maximum * fraction
    }
}
