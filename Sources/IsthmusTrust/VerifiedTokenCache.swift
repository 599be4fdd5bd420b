import Crypto
import Synchronization

/// Remembers tokens that verified, so a peer presenting the same token again
/// costs one SHA-256 and one dictionary lookup instead of an Ed25519
/// verification. istiod sends one long-lived token with every request and
/// every watch, so nearly all checks are repeats.
///
/// - **Keyed by SHA-256 of the token**, never the token: a heap dump or a
///   debugger shows digests, not credentials.
/// - **Only successes are stored**, so an attacker without a trusted key
///   cannot put anything into the cache, let alone evict honest entries.
/// - **Same verdict as a fresh check.** An entry holds what steps 1-6 of
///   ``TokenVerifier`` established (peer, signature, audience); scope and
///   time are re-checked on every hit with the same code, in the same order,
///   so a cached token expires at `exp + leeway` exactly as it would uncached.
/// - **Emptied when the rules change.** Each stripe remembers the epoch of the
///   verifier that filled it: a digest of the peers fingerprint, the local
///   UUID and the leeway. A lookup or insert under another epoch empties the
///   stripe first, so after a peers reload a removed peer's token is never
///   answered from the cache. An unchanged reload keeps the same epoch and
///   the cache stays warm. ``synchronize(with:)`` empties all stripes at once.
/// - **Bounded.** At most `capacity` entries, split evenly over the stripes.
///   A full stripe first drops expired entries, then the entry that expires
///   soonest (it has the least value left; LRU bookkeeping would cost every
///   hit a write).
/// - **Lock-striped** by the digest's first word, 16 stripes by default, each
///   a `Mutex` held for a dictionary operation only: requests on different
///   event loops rarely meet.
public final class VerifiedTokenCache: Sendable {
    /// Counters, summed over the stripes. For metrics and tests.
    public struct Statistics: Sendable, Hashable {
        /// Lookups that found an entry (its verdict may still be expired or
        /// wrong scope).
        public var hits = 0
        /// Lookups that found nothing and fell back to full verification.
        public var misses = 0
        public var insertions = 0
        /// Entries dropped to make room.
        public var evictions = 0
        /// Entries dropped because they had expired.
        public var expirations = 0
        /// Entries dropped because the verifier's epoch changed.
        public var invalidations = 0

        public init() {}
    }

    /// Upper bound on the number of entries.
    public let capacity: Int
    private let stripes: [Stripe]
    private let perStripeCapacity: Int

    /// - Parameters:
    ///   - capacity: maximum number of entries, at least 1.
    ///   - stripes: number of independently locked parts (reduced to
    ///     `capacity` if larger).
    public init(capacity: Int = 10_000, stripes: Int = 16) {
        precondition(capacity >= 1, "cache capacity must be positive")
        precondition(stripes >= 1, "cache needs at least one stripe")
        let count = min(stripes, capacity)
        self.perStripeCapacity = capacity / count
        self.capacity = perStripeCapacity * count
        self.stripes = (0..<count).map { _ in Stripe() }
    }

    // MARK: internals used by TokenVerifier

    static func key(for token: BearerToken) -> Digest256 {
        let digest =
            token.rawValue.utf8.withContiguousStorageIfAvailable { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
            ?? SHA256.hash(data: Array(token.rawValue.utf8))
        return Digest256(digest)
    }

    private func stripe(for key: Digest256) -> Stripe {
        stripes[Int(truncatingIfNeeded: key.w0 % UInt64(stripes.count))]
    }

    /// The entry for `key` decided under `epoch`, or nil. An expired entry is
    /// removed but still returned, so the caller reports `expired` without
    /// verifying the signature again.
    func lookup(_ key: Digest256, epoch: Digest256, now: Int64) -> CheckedToken? {
        stripe(for: key).state.withLock { state in
            state.adopt(epoch)
            guard let entry = state.entries[key] else {
                state.statistics.misses += 1
                return nil
            }
            state.statistics.hits += 1
            if now >= entry.validUntil {
                state.entries[key] = nil
                state.statistics.expirations += 1
            }
            return entry
        }
    }

    func insert(_ key: Digest256, _ entry: CheckedToken, epoch: Digest256, now: Int64) {
        let limit = perStripeCapacity
        stripe(for: key).state.withLock { state in
            state.adopt(epoch)
            if state.entries[key] == nil, state.entries.count >= limit {
                state.makeRoom(limit: limit, now: now)
            }
            state.entries[key] = entry
            state.statistics.insertions += 1
        }
    }

    // MARK: public surface

    /// Whether an entry for `token` is stored (under any epoch).
    public func contains(_ token: BearerToken) -> Bool {
        let key = Self.key(for: token)
        return stripe(for: key).state.withLock { $0.entries[key] != nil }
    }

    /// Number of stored entries.
    public var count: Int {
        stripes.reduce(0) { sum, stripe in sum + stripe.state.withLock { $0.entries.count } }
    }

    public var statistics: Statistics {
        stripes.reduce(into: Statistics()) { total, stripe in
            let s = stripe.state.withLock { $0.statistics }
            total.hits += s.hits
            total.misses += s.misses
            total.insertions += s.insertions
            total.evictions += s.evictions
            total.expirations += s.expirations
            total.invalidations += s.invalidations
        }
    }

    /// Empties every stripe whose entries were decided by other rules than
    /// `verifier`'s. Call it after swapping in a verifier for a reloaded
    /// peers file; without it stripes are emptied lazily on first touch,
    /// which is equally safe but keeps stale entries in memory longer.
    public func synchronize(with verifier: TokenVerifier) {
        for stripe in stripes {
            stripe.state.withLock { $0.adopt(verifier.epoch) }
        }
    }

    /// Drops every entry.
    public func removeAll() {
        for stripe in stripes {
            stripe.state.withLock { $0.entries.removeAll(keepingCapacity: true) }
        }
    }
}

private final class Stripe: Sendable {
    let state = Mutex(StripeState())
}

private struct StripeState {
    var epoch: Digest256? = nil
    var entries: [Digest256: CheckedToken] = [:]
    var statistics = VerifiedTokenCache.Statistics()

    mutating func adopt(_ newEpoch: Digest256) {
        guard epoch != newEpoch else { return }
        statistics.invalidations += entries.count
        entries.removeAll(keepingCapacity: true)
        epoch = newEpoch
    }

    mutating func makeRoom(limit: Int, now: Int64) {
        let before = entries.count
        entries = entries.filter { now < $0.value.validUntil }
        statistics.expirations += before - entries.count
        guard entries.count >= limit,
            let soonest = entries.min(by: { $0.value.validUntil < $1.value.validUntil })
        else { return }
        entries[soonest.key] = nil
        statistics.evictions += 1
    }
}

extension TokenVerifier {
    /// ``verify(_:scope:now:)`` with a cache in front: one SHA-256 and one
    /// lookup for a token seen before, a full verification otherwise (and the
    /// result stored when it succeeds). The verdict is the same either way.
    public func verify(
        _ token: BearerToken, scope: TokenScope, now: Int64, cache: VerifiedTokenCache
    ) throws(TokenFailure) -> VerifiedToken {
        // Refuse oversized input before hashing it, as the uncached path does.
        guard token.rawValue.utf8.count <= Self.maximumTokenLength else {
            throw .malformed(.tooLong(limit: Self.maximumTokenLength))
        }
        let key = VerifiedTokenCache.key(for: token)
        if let cached = cache.lookup(key, epoch: epoch, now: now) {
            try checkScopeAndTime(cached, scope: scope, now: now)
            return cached.verified(scope: scope)
        }
        let checked = try verifyIgnoringScopeAndTime(token)
        try checkScopeAndTime(checked, scope: scope, now: now)
        cache.insert(key, checked, epoch: epoch, now: now)
        return checked.verified(scope: scope)
    }
}
