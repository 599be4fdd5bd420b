import NIOConcurrencyHelpers
import NIOCore

/// A short request waiting in ``PeerFairQueue``: resumed on its own loop.
struct QueuedShortRequest: Sendable {
    let handler: NIOLoopBound<ProxyHandler>
    /// The handler's request number, so a grant for a request that already
    /// ended (its slot then released by the handler) is recognised and dropped.
    let serial: UInt64

    func resume() {
        let handler = handler
        let serial = serial
        handler.eventLoop.execute { handler.value.slotGranted(serial) }
    }
}

/// Why the proxy answered 429 to a request it had admitted; a bounded metric label.
enum ThrottleReason: String, Sendable, CaseIterable {
    case rateLimit = "rate_limit"
    case queueFull = "queue_full"
    case queueTimeout = "queue_timeout"

    init(_ refusal: ShortRequestRefusal) {
        switch refusal {
        case .queueFull: self = .queueFull
        case .queueTimeout: self = .queueTimeout
        }
    }

    var message: String {
        switch self {
        case .rateLimit: "this peer sends more requests than its rate limit allows, please try again later"
        case .queueFull: "too many requests of this peer are waiting for the API server, please try again later"
        case .queueTimeout: "the request waited too long for its share of the API server, please try again later"
        }
    }
}

/// The per-peer rate limits and the fair queue, behind one lock: a short
/// request takes it once to start and once to end; a watch once, for its
/// rate limit only (watches are bounded by ``WatchBudget``).
struct PeerFairness: Sendable {
    var queue: PeerFairQueue<QueuedShortRequest>
    var rates: PeerRateLimiter

    init(limits: ShortRequestLimits, rates: PeerRateLimits) {
        queue = PeerFairQueue(limits: limits)
        self.rates = PeerRateLimiter(limits: rates)
    }

    enum Start {
        case go
        case wait(PeerFairQueue<QueuedShortRequest>.Ticket)
        case refuse(ThrottleReason, retryAfter: Int)
    }

    /// A short request of `peer`: its rate limit, then its turn.
    mutating func start(peer: String, now: UInt64, waiter: QueuedShortRequest) -> Start {
        if let retryAfter = rates.take(peer: peer, now: now) { return .refuse(.rateLimit, retryAfter: retryAfter) }
        switch queue.acquire(peer: peer, now: now, waiter: waiter) {
        case .admitted: return .go
        case .queued(let ticket): return .wait(ticket)
        case .refused(let refusal): return .refuse(ThrottleReason(refusal), retryAfter: 1)
        }
    }
}
