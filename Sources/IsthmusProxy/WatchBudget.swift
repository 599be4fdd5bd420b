/// The explicit bounds on open watches: in total and per peer. Watches live
/// for up to half an hour, so they are counted apart from short requests; a
/// watch beyond a bound is a 429 `TooManyRequests` with `Retry-After`, which
/// client-go's reflectors honour by backing off and re-watching.
///
/// Pure and value-typed: the proxy keeps one behind a lock, taken once when a
/// watch opens and once when it ends.
public struct WatchBudget: Sendable, Hashable {
    public struct Limits: Sendable, Hashable {
        /// Open watches through this proxy process at most.
        public var total: Int
        /// Open watches of one peer at most.
        public var perPeer: Int

        /// Sized for ten thousand watches (a mesh of many clusters, each istiod
        /// replica holding about ten per cluster it reads); one peer may use them all.
        public init(total: Int = 10_000, perPeer: Int = 10_000) {
            self.total = total
            self.perPeer = perPeer
        }
    }

    /// Why a watch was refused; a bounded metric label.
    public enum Refusal: String, Sendable, Hashable {
        case total
        case peer
    }

    public let limits: Limits
    public private(set) var open = 0
    public private(set) var openByPeer: [String: Int] = [:]

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Counts a new watch of `peer`, or says why it may not open.
    public mutating func acquire(peer: String) -> Refusal? {
        let mine = openByPeer[peer, default: 0]
        if mine >= limits.perPeer { return .peer }
        if open >= limits.total { return .total }
        open += 1
        openByPeer[peer] = mine + 1
        return nil
    }

    /// A watch counted by ``acquire(peer:)`` ended.
    public mutating func release(peer: String) {
        guard let mine = openByPeer[peer], mine > 0 else { return }
        open -= 1
        openByPeer[peer] = mine == 1 ? nil : mine - 1
    }
}
