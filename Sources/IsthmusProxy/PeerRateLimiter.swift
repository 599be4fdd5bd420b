import Foundation

/// A rate: requests per second, with a burst a client may send at once.
public struct RequestRate: Sendable, Hashable, CustomStringConvertible {
    public var perSecond: Double
    public var burst: Int

    public init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = burst
    }

    /// `QPS/BURST` (e.g. `50/100`), or `QPS` alone (the burst is then QPS, at least 1).
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
              let perSecond = Double(parts[0]), perSecond.isFinite, perSecond > 0, perSecond <= 1_000_000 else { return nil }
        let burst: Int
        if parts.count == 2 {
            guard let given = Int(parts[1]), given >= 1, given <= 1_000_000 else { return nil }
            burst = given
        } else {
            burst = max(1, Int(perSecond.rounded(.up)))
        }
        self.init(perSecond: perSecond, burst: burst)
    }

    public var description: String {
        let rate = perSecond == perSecond.rounded() ? String(Int(perSecond)) : String(perSecond)
        return "\(rate)/\(burst)"
    }
}

/// Per-peer rate limits: one for every peer (nil: none) and overrides by peer name.
public struct PeerRateLimits: Sendable, Hashable {
    public var everyPeer: RequestRate?
    public var byPeer: [String: RequestRate]

    public init(everyPeer: RequestRate? = nil, byPeer: [String: RequestRate] = [:]) {
        self.everyPeer = everyPeer
        self.byPeer = byPeer
    }

    public var isOff: Bool { everyPeer == nil && byPeer.isEmpty }

    public func rate(for peer: String) -> RequestRate? { byPeer[peer] ?? everyPeer }

    /// `PEER=QPS/BURST` entries, comma-separated (the flag's form).
    public static func parseByPeer(_ text: String) -> Result<[String: RequestRate], ParseError> {
        var rates: [String: RequestRate] = [:]
        let spaces = CharacterSet(charactersIn: " ")
        for entry in text.split(separator: ",") {
            let pair = entry.split(separator: "=", maxSplits: 1)
            let name = pair.first.map { $0.trimmingCharacters(in: spaces) } ?? ""
            guard pair.count == 2, !name.isEmpty else {
                return .failure(ParseError(problem: "expected PEER=QPS/BURST entries separated by commas, got \"\(entry)\""))
            }
            guard let rate = RequestRate(parsing: pair[1].trimmingCharacters(in: spaces)) else {
                return .failure(ParseError(problem: "peer \(name): expected QPS/BURST like 50/100, got \"\(pair[1])\""))
            }
            guard rates.updateValue(rate, forKey: name) == nil else {
                return .failure(ParseError(problem: "peer \(name) is given more than once"))
            }
        }
        return .success(rates)
    }

    public struct ParseError: Error, Sendable, Equatable {
        public var problem: String
        public init(problem: String) { self.problem = problem }
    }
}

/// Token buckets, one per peer that has a rate: each request takes a token;
/// tokens come back at the peer's rate up to its burst. Pure (the caller
/// passes `now`), so refills are tested without waiting.
public struct PeerRateLimiter: Sendable {
    struct Bucket: Sendable {
        var tokens: Double
        var updated: UInt64
    }

    public let limits: PeerRateLimits
    private var buckets: [String: Bucket] = [:]

    public init(limits: PeerRateLimits = PeerRateLimits()) {
        self.limits = limits
    }

    /// Takes a token for a request of `peer`; nil when it may go, otherwise
    /// the whole seconds until a token is back (at least 1: `Retry-After`).
    public mutating func take(peer: String, now: UInt64) -> Int? {
        guard let rate = limits.rate(for: peer) else { return nil }
        var bucket = buckets[peer] ?? Bucket(tokens: Double(rate.burst), updated: now)
        let elapsed = Double(now &- bucket.updated) / 1e9
        bucket.tokens = min(Double(rate.burst), bucket.tokens + elapsed * rate.perSecond)
        bucket.updated = now
        defer { buckets[peer] = bucket }
        if bucket.tokens >= 1 {
            bucket.tokens -= 1
            return nil
        }
        let wait = (1 - bucket.tokens) / rate.perSecond
        return max(1, Int(wait.rounded(.up)))
    }
}
