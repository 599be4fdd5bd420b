import Testing
@testable import IsthmusTrust

@Suite("Verified-token cache")
struct VerifiedTokenCacheTests {
    let now = Fixtures.now
    let peer = Fixtures.peerUUID

    func token(expiresIn seconds: Int64 = 3600, scope: TokenScope = .api, key: SigningKeyPair = Fixtures.key1,
               subject: String = Fixtures.peerUUID) -> BearerToken {
        BearerToken(mint(Fixtures.claims(subject: subject, scope: scope, expiresAt: now + seconds), with: key))
    }

    func failure(_ token: BearerToken, _ verifier: TokenVerifier, _ cache: VerifiedTokenCache,
                 scope: TokenScope = .api, at time: Int64? = nil) -> TokenFailure? {
        do {
            _ = try verifier.verify(token, scope: scope, now: time ?? now, cache: cache)
            return nil
        } catch {
            return error
        }
    }

    @Test("the second check of a token is a hit and gives the same result")
    func hit() throws {
        let cache = VerifiedTokenCache()
        let verifier = Fixtures.verifier()
        let token = token()
        #expect(!cache.contains(token))
        let first = try verifier.verify(token, scope: .api, now: now, cache: cache)
        #expect(cache.contains(token))
        #expect(cache.statistics.misses == 1)
        #expect(cache.statistics.insertions == 1)
        let second = try verifier.verify(token, scope: .api, now: now + 10, cache: cache)
        #expect(cache.statistics.hits == 1)
        #expect(first == second)
        #expect(first == (try verifier.verify(token, scope: .api, now: now)))
        #expect(cache.count == 1)
    }

    @Test("a cached token is still checked for scope")
    func cachedScope() throws {
        let cache = VerifiedTokenCache()
        let verifier = Fixtures.verifier()
        let token = token()
        _ = try verifier.verify(token, scope: .api, now: now, cache: cache)
        #expect(failure(token, verifier, cache, scope: .privateMulticluster)
            == .wrongScope(peer: peer, presented: "\"api\"", required: .privateMulticluster))
        #expect(cache.statistics.hits == 1)
        // The entry stays: the token is still good for its own scope.
        #expect(failure(token, verifier, cache) == nil)
    }

    @Test("a cached token expires at exp + leeway, exactly as uncached, and is dropped")
    func expiry() throws {
        let cache = VerifiedTokenCache()
        let verifier = Fixtures.verifier()
        let token = token(expiresIn: 100)
        _ = try verifier.verify(token, scope: .api, now: now, cache: cache)
        #expect(failure(token, verifier, cache, at: now + 100 + 59) == nil)
        #expect(failure(token, verifier, cache, at: now + 100 + 60) == .expired(peer: peer, expiresAt: now + 100))
        #expect(!cache.contains(token))
        #expect(cache.statistics.expirations == 1)
        // And the uncached path agrees.
        #expect(throws: TokenFailure.expired(peer: peer, expiresAt: now + 100)) {
            try verifier.verify(token, scope: .api, now: now + 160)
        }
    }

    @Test("a cached token is refused before nbf - leeway")
    func notYetValid() throws {
        let cache = VerifiedTokenCache()
        let verifier = Fixtures.verifier()
        let token = token()
        _ = try verifier.verify(token, scope: .api, now: now, cache: cache)
        #expect(failure(token, verifier, cache, at: now - 61) == .notYetValid(peer: peer, notBefore: now))
        #expect(failure(token, verifier, cache, at: now - 60) == nil)
        #expect(cache.statistics.hits == 2)
    }

    @Test("failures are not cached")
    func failuresNotCached() {
        let cache = VerifiedTokenCache()
        let verifier = Fixtures.verifier()
        let forged = token(key: Fixtures.key2)
        #expect(failure(forged, verifier, cache) == .badSignature(peer: peer))
        #expect(failure(forged, verifier, cache) == .badSignature(peer: peer))
        #expect(cache.count == 0)
        #expect(cache.statistics.insertions == 0)
        // Nor are tokens that verify but fail scope or time.
        let expired = token(expiresIn: -3600)
        #expect(failure(expired, verifier, cache) == .expired(peer: peer, expiresAt: now - 3600))
        #expect(failure(token(), verifier, cache, scope: .privateFederation) != nil)
        #expect(cache.count == 0)
    }

    @Test("an oversized token is refused before it is hashed or looked up")
    func oversized() {
        let cache = VerifiedTokenCache()
        let huge = BearerToken(String(repeating: "a", count: TokenVerifier.maximumTokenLength + 1))
        #expect(failure(huge, Fixtures.verifier(), cache) == .malformed(.tooLong(limit: TokenVerifier.maximumTokenLength)))
        #expect(cache.statistics == VerifiedTokenCache.Statistics())
    }

    @Test("the cache never holds more than its capacity")
    func bounded() throws {
        let cache = VerifiedTokenCache(capacity: 4, stripes: 2)
        #expect(cache.capacity == 4)
        let verifier = Fixtures.verifier()
        for i in 0..<12 {
            _ = try verifier.verify(token(expiresIn: 3600 + Int64(i)), scope: .api, now: now, cache: cache)
            #expect(cache.count <= 4)
        }
        #expect(cache.statistics.insertions == 12)
        #expect(cache.statistics.evictions == 8)
    }

    @Test("a full stripe evicts the entry that expires soonest")
    func evictsSoonest() throws {
        let cache = VerifiedTokenCache(capacity: 2, stripes: 1)
        let verifier = Fixtures.verifier()
        let a = token(expiresIn: 100), b = token(expiresIn: 300), c = token(expiresIn: 200)
        for t in [b, a, c] { _ = try verifier.verify(t, scope: .api, now: now, cache: cache) }
        #expect(!cache.contains(a))
        #expect(cache.contains(b))
        #expect(cache.contains(c))
    }

    @Test("a full stripe drops expired entries before evicting live ones")
    func sweepsExpired() throws {
        let cache = VerifiedTokenCache(capacity: 2, stripes: 1)
        let verifier = Fixtures.verifier()
        let shortLived = token(expiresIn: 10), longLived = token(expiresIn: 10_000)
        _ = try verifier.verify(shortLived, scope: .api, now: now, cache: cache)
        _ = try verifier.verify(longLived, scope: .api, now: now, cache: cache)
        let later = token(expiresIn: 20_000)
        _ = try verifier.verify(later, scope: .api, now: now + 100, cache: cache)
        #expect(!cache.contains(shortLived))
        #expect(cache.contains(longLived))
        #expect(cache.contains(later))
        #expect(cache.statistics.expirations == 1)
        #expect(cache.statistics.evictions == 0)
    }

    @Test("an unchanged reload keeps the cache warm")
    func unchangedReload() throws {
        let cache = VerifiedTokenCache()
        let token = token()
        _ = try Fixtures.verifier().verify(token, scope: .api, now: now, cache: cache)
        let reloaded = Fixtures.verifier(peers: try TrustedPeers(json: Fixtures.standardPeers.encodedJSON()))
        cache.synchronize(with: reloaded)
        #expect(cache.count == 1)
        _ = try reloaded.verify(token, scope: .api, now: now, cache: cache)
        #expect(cache.statistics.hits == 1)
        #expect(cache.statistics.invalidations == 0)
    }

    @Test("the cache empties when the trusted set changes")
    func emptiedOnChange() throws {
        let cache = VerifiedTokenCache()
        let verifier = Fixtures.verifier()
        let tokens = (0..<20).map { token(expiresIn: 3600 + Int64($0)) }
        for t in tokens { _ = try verifier.verify(t, scope: .api, now: now, cache: cache) }
        #expect(cache.count == 20)

        let changed = Fixtures.verifier(peers: Fixtures.peers([Fixtures.peer(peer, keys: [Fixtures.key1.publicKey])]))
        #expect(changed.peers.fingerprint != verifier.peers.fingerprint)
        cache.synchronize(with: changed)
        #expect(cache.count == 0)
        #expect(cache.statistics.invalidations == 20)
    }

    @Test("without synchronize, the first touch under a new verifier empties the stripe")
    func lazyInvalidation() throws {
        let cache = VerifiedTokenCache(capacity: 100, stripes: 1)
        let token = token()
        _ = try Fixtures.verifier().verify(token, scope: .api, now: now, cache: cache)
        let changed = Fixtures.verifier(peers: Fixtures.peers([Fixtures.peer(peer, keys: [Fixtures.key1.publicKey])]))
        _ = try changed.verify(token, scope: .api, now: now, cache: cache)
        #expect(cache.statistics.invalidations == 1)
        #expect(cache.statistics.misses == 2)
        #expect(cache.statistics.hits == 0)
    }

    @Test("a cached token whose peer was removed is refused after the reload")
    func removedPeer() throws {
        let cache = VerifiedTokenCache()
        let token = token()
        _ = try Fixtures.verifier().verify(token, scope: .api, now: now, cache: cache)
        #expect(cache.contains(token))
        // Reload without synchronize: the stale entry must still not answer.
        let withoutPeer = Fixtures.verifier(peers: Fixtures.peers([Fixtures.peer(Fixtures.otherPeerUUID, keys: [Fixtures.key2.publicKey])]))
        #expect(failure(token, withoutPeer, cache) == .unknownPeer("\"\(peer)\""))
        #expect(!cache.contains(token))
    }

    @Test("a cached token signed by a rotated-out key is refused after the reload")
    func removedKey() throws {
        let cache = VerifiedTokenCache()
        let rotating = Fixtures.verifier(peers: Fixtures.peers([Fixtures.peer(peer, keys: [Fixtures.key1.publicKey, Fixtures.key2.publicKey])]))
        let byOldKey = token(key: Fixtures.key1)
        _ = try rotating.verify(byOldKey, scope: .api, now: now, cache: cache)
        let rotated = Fixtures.verifier(peers: Fixtures.peers([Fixtures.peer(peer, keys: [Fixtures.key2.publicKey])]))
        #expect(failure(byOldKey, rotated, cache) == .badSignature(peer: peer))
    }

    @Test("verifiers with another audience or leeway do not share entries")
    func epochIncludesAudienceAndLeeway() throws {
        let cache = VerifiedTokenCache()
        let token = token()
        _ = try Fixtures.verifier().verify(token, scope: .api, now: now, cache: cache)
        let elsewhere = TokenVerifier(localClusterUUID: "another-cluster", peers: Fixtures.standardPeers)
        #expect(failure(token, elsewhere, cache) == .wrongAudience(peer: peer))
        _ = try Fixtures.verifier().verify(token, scope: .api, now: now, cache: cache)
        let strict = Fixtures.verifier(leeway: .zero)
        #expect(failure(token, strict, cache, at: now + 3600) == .expired(peer: peer, expiresAt: now + 3600))
        #expect(cache.statistics.hits == 0)
    }

    @Test("removeAll empties the cache")
    func removeAll() throws {
        let cache = VerifiedTokenCache()
        _ = try Fixtures.verifier().verify(token(), scope: .api, now: now, cache: cache)
        cache.removeAll()
        #expect(cache.count == 0)
    }

    @Test("capacity smaller than the stripe count still bounds the cache")
    func tinyCache() throws {
        let cache = VerifiedTokenCache(capacity: 3, stripes: 16)
        #expect(cache.capacity == 3)
        for i in 0..<10 {
            _ = try Fixtures.verifier().verify(token(expiresIn: 1000 + Int64(i)), scope: .api, now: now, cache: cache)
        }
        #expect(cache.count <= 3)
    }

    @Test("concurrent checks of the same and different tokens all succeed")
    func concurrent() async throws {
        let cache = VerifiedTokenCache(capacity: 1000)
        let verifier = Fixtures.verifier()
        let tokens = (0..<8).map { token(expiresIn: 3600 + Int64($0)) }
        let now = self.now
        let failures = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    var failed = 0
                    for i in 0..<200 {
                        let token = tokens[(worker + i) % tokens.count]
                        if (try? verifier.verify(token, scope: .api, now: now, cache: cache)) == nil { failed += 1 }
                    }
                    return failed
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
        #expect(cache.count == tokens.count)
        let stats = cache.statistics
        #expect(stats.hits + stats.misses == 1600)
    }
}
