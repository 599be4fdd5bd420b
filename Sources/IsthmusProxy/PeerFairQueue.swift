/// Fair sharing of the API server between peers, for short requests (get,
/// list, discovery), in the spirit of kube-apiserver's API Priority and
/// Fairness. Every request the proxy forwards reaches the API server as the
/// proxy's own ServiceAccount, so only the proxy can tell peers apart.
///
/// - At most ``ShortRequestLimits/maxInFlight`` requests are in flight upstream, in total.
/// - Each peer that is asking (a request in flight or queued, or one that
///   ended less than ``ShortRequestLimits/activeWindow`` ago) is guaranteed an equal
///   share of that bound. A peer may go beyond its share only with capacity
///   no other asking peer is short of, so a peer alone uses the whole bound
///   and a flood cannot take the slots a quiet peer needs next.
/// - A request that may not go now waits in its peer's queue (at most
///   ``ShortRequestLimits/maxQueuedPerPeer``); a freed slot goes to the queued peer with
///   the fewest requests in flight (the oldest head breaks ties).
/// - Beyond the queue, or after waiting ``ShortRequestLimits/maxQueueWait``, the request
///   is refused (the proxy answers 429 `TooManyRequests` with `Retry-After`).
///
/// Pure and value-typed: no clock, no locks, no I/O (the proxy keeps one
/// behind a lock and passes `now`). `Waiter` is whatever resumes a queued
/// request; it is handed back, never called, so it runs outside the lock.
public struct PeerFairQueue<Waiter> {
    public typealias Limits = ShortRequestLimits
    public typealias Refusal = ShortRequestRefusal

    public typealias Ticket = UInt64

    public enum Admission {
        /// In flight now; ``release(peer:now:)`` when it ends.
        case admitted
        /// Waiting; its waiter comes back from ``release(peer:now:)`` (then it
        /// is in flight) unless ``cancel(_:peer:)`` takes it out first.
        case queued(Ticket)
        case refused(Refusal)
    }

    struct Queued {
        var ticket: Ticket
        var waiter: Waiter
    }

    struct PeerState {
        var inFlight = 0
        /// Oldest first. A ring would save the shift on removal; queues are short.
        var queue: [Queued] = []
        /// When the peer's last request ended (uptime nanoseconds).
        var lastEnded: UInt64 = 0
    }

    public let limits: Limits
    public private(set) var inFlight = 0
    /// Requests waiting, over all peers.
    public private(set) var queuedCount = 0
    private var peers: [String: PeerState] = [:]
    private var nextTicket: Ticket = 1
    private let activeWindowNanoseconds: UInt64

    public init(limits: Limits = Limits()) {
        self.limits = limits
        let window = limits.activeWindow.components
        activeWindowNanoseconds = UInt64(max(0, window.seconds)) * 1_000_000_000 + UInt64(max(0, window.attoseconds) / 1_000_000_000)
    }

    /// Peers asking now, with their requests in flight and queued.
    public var snapshot: [(peer: String, inFlight: Int, queued: Int)] {
        peers.map { ($0.key, $0.value.inFlight, $0.value.queue.count) }.sorted { $0.peer < $1.peer }
    }

    public func inFlight(of peer: String) -> Int { peers[peer]?.inFlight ?? 0 }
    public func queued(of peer: String) -> Int { peers[peer]?.queue.count ?? 0 }

    /// A short request of `peer` wants to go upstream.
    public mutating func acquire(peer: String, now: UInt64, waiter: Waiter) -> Admission {
        // Forgetting a peer widens the others' shares, which may let queued
        // requests go; only a release hands those out, so with any queued
        // (and so a release to come) the forgetting waits for it.
        if queuedCount == 0 { forgetIdlePeers(now: now) }
        var state = peers[peer] ?? PeerState()
        // A peer with a queue waits behind it: no overtaking its own older requests.
        if state.queue.isEmpty, mayStart(peer, state) {
            state.inFlight += 1
            inFlight += 1
            peers[peer] = state
            return .admitted
        }
        guard state.queue.count < limits.maxQueuedPerPeer else {
            state.lastEnded = now
            peers[peer] = state
            return .refused(.queueFull)
        }
        let ticket = nextTicket
        nextTicket += 1
        state.queue.append(Queued(ticket: ticket, waiter: waiter))
        queuedCount += 1
        peers[peer] = state
        return .queued(ticket)
    }

    /// A request of `peer` that was in flight ended. Returns the waiters that
    /// may go now (each already counted in flight), in order.
    public mutating func release(peer: String, now: UInt64) -> [Waiter] {
        guard var state = peers[peer], state.inFlight > 0 else { return [] }
        state.inFlight -= 1
        state.lastEnded = now
        peers[peer] = state
        inFlight -= 1
        forgetIdlePeers(now: now)
        return dispatch()
    }

    /// Takes a queued request out (its client left, or it waited too long).
    /// False when it is no longer queued: its waiter was already handed out
    /// by ``release(peer:now:)``, so it is in flight and must be released.
    public mutating func cancel(_ ticket: Ticket, peer: String, now: UInt64) -> Bool {
        guard var state = peers[peer], let index = state.queue.firstIndex(where: { $0.ticket == ticket }) else { return false }
        state.queue.remove(at: index)
        queuedCount -= 1
        state.lastEnded = now
        peers[peer] = state
        return true
    }

    /// The share of the bound each asking peer is guaranteed now.
    public var fairShare: Int { max(1, limits.maxInFlight / max(1, peers.count)) }

    /// Whether `peer` (currently `state`) may put one more request in flight:
    /// there is room, and either it is under its share or what is left covers
    /// every other asking peer's unused share.
    private func mayStart(_ peer: String, _ state: PeerState) -> Bool {
        guard inFlight < limits.maxInFlight else { return false }
        let share = max(1, limits.maxInFlight / max(1, peers.count + (peers[peer] == nil ? 1 : 0)))
        if state.inFlight < share { return true }
        var reserved = 0
        for (other, otherState) in peers where other != peer {
            reserved += max(0, share - otherState.inFlight)
        }
        return limits.maxInFlight - inFlight > reserved
    }

    /// Starts queued requests while one may start: the peer with the fewest
    /// in flight first, the oldest head among equals.
    private mutating func dispatch() -> [Waiter] {
        var started: [Waiter] = []
        while inFlight < limits.maxInFlight {
            var best: (peer: String, inFlight: Int, ticket: Ticket)?
            for (peer, state) in peers {
                guard let head = state.queue.first, mayStart(peer, state) else { continue }
                if let current = best, (current.inFlight, current.ticket) <= (state.inFlight, head.ticket) { continue }
                best = (peer, state.inFlight, head.ticket)
            }
            guard let chosen = best, var state = peers[chosen.peer] else { break }
            let head = state.queue.removeFirst()
            queuedCount -= 1
            state.inFlight += 1
            inFlight += 1
            peers[chosen.peer] = state
            started.append(head.waiter)
        }
        return started
    }

    /// Drops peers with nothing in flight or queued whose last request ended
    /// more than ``ShortRequestLimits/activeWindow`` ago: they no longer hold a share.
    private mutating func forgetIdlePeers(now: UInt64) {
        for (peer, state) in peers where state.inFlight == 0 && state.queue.isEmpty
            && now &- state.lastEnded > activeWindowNanoseconds {
            peers[peer] = nil
        }
    }
}

extension PeerFairQueue: Sendable where Waiter: Sendable {}
extension PeerFairQueue.PeerState: Sendable where Waiter: Sendable {}
extension PeerFairQueue.Queued: Sendable where Waiter: Sendable {}

/// The bounds of ``PeerFairQueue``.
public struct ShortRequestLimits: Sendable, Hashable {
    /// Short requests in flight upstream at most, over all peers.
    public var maxInFlight: Int
    /// Requests of one peer waiting for a slot at most; one more is refused.
    public var maxQueuedPerPeer: Int
    /// Longest a request waits in its queue before it is refused.
    public var maxQueueWait: Duration
    /// How long a peer counts as asking after its last request ended, so
    /// a peer sending one request at a time keeps its share between them.
    public var activeWindow: Duration
    /// How long a refusal that did not wait (queue full, rate limit) is held
    /// before it is sent, so a client that ignores `Retry-After` cannot make
    /// the proxy spend its CPU answering 429s (zero: at once).
    public var refusalDelay: Duration

    public init(maxInFlight: Int = 64, maxQueuedPerPeer: Int = 64, maxQueueWait: Duration = .seconds(5),
                activeWindow: Duration = .seconds(1), refusalDelay: Duration = .milliseconds(250)) {
        self.maxInFlight = maxInFlight
        self.maxQueuedPerPeer = maxQueuedPerPeer
        self.maxQueueWait = maxQueueWait
        self.activeWindow = activeWindow
        self.refusalDelay = refusalDelay
    }
}

/// Why a request was refused; a bounded metric label.
public enum ShortRequestRefusal: String, Sendable, Hashable, CaseIterable {
    /// The peer's queue was full.
    case queueFull = "queue_full"
    /// The request waited ``ShortRequestLimits/maxQueueWait`` without a slot.
    case queueTimeout = "queue_timeout"
}

