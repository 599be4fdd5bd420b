// Inputs shared by the benchmarks (CoreBenchmarks) and the profiling harness
// (ProfileHarness), so both measure exactly the same requests, policy and token.

import Crypto
import Foundation
import IsthmusPolicy
import IsthmusRequestInfo
import IsthmusTrust

/// The repository's `policies/` directory: what ships, not a copy of it.
/// This file is `<repo>/benchmarks/Sources/CoreFixtures/CoreFixtures.swift`.
public let shippedPoliciesDirectory: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<4 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("policies").path
}()

/// The peer the requests come from (a remote istiod's cluster UUID).
public let peerUUID = "0b7e8f9a-1c2d-4e3f-9a4b-5c6d7e8f9a0b"
/// "Us": the cluster whose proxy verifies.
public let localUUID = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
/// A fixed clock, so every run verifies the same token at the same instant.
public let now: Int64 = 1_700_000_000

/// A self-signed Ed25519 CA certificate (the one from
/// Tests/IsthmusTrustTests/Fixtures.swift); `TrustedPeer` only checks that a
/// CERTIFICATE block is present.
let rootCA = """
    -----BEGIN CERTIFICATE-----
    MIIBbTCCAR+gAwIBAgIUQDzWvIou32PzZIe5CEgwhHvWEuUwBQYDK2VwMCsxDTAL
    BgNVBAoMBHRlc3QxGjAYBgNVBAMMEWlzdGhtdXMgdGVzdCByb290MCAXDTI2MTEy
    NTE3MTQxMloYDzIxMjYxMTAxMTcxNDEyWjArMQ0wCwYDVQQKDAR0ZXN0MRowGAYD
    VQQDDBFpc3RobXVzIHRlc3Qgcm9vdDAqMAUGAytlcAMhAOB/ESvesc/q4q9vKDts
    8XY27RhvWwV3yaUEDAarP3KAo1MwUTAdBgNVHQ4EFgQUIl203SM+e/9bH9fdz1Py
    Rwl6aI0wHwYDVR0jBBgwFoAUIl203SM+e/9bH9fdz1PyRwl6aI0wDwYDVR0TAQH/
    BAUwAwEB/zAFBgMrZXADQQCKMg6Qyw+S+Tpp2PgaiwTqOlzYw/9o7rf8XJctpsPO
    ReanTAdP02qZ0pbE+WLJyWp15jr0ibcaAiW57VfswbQM
    -----END CERTIFICATE-----

    """

/// One request as istiod (client-go) sends it, and the verdict the shipped
/// policy must give it; checked once before measuring, so a policy change
/// cannot silently turn an "allowed" benchmark into a "denied" one.
public struct RequestCase: Sendable {
    public let name: String
    public let method: String
    public let target: String
    public let allowed: Bool
}

/// Targets as client-go's reflectors write them: the initial list is
/// `?limit=500&resourceVersion=0`, the watch that follows carries
/// `allowWatchBookmarks`, the last `resourceVersion`, a randomised `timeout`
/// and `timeoutSeconds`, and `watch=true`.
public let requestCases: [RequestCase] = [
    RequestCase(
        name: "watch endpointslices (cluster)", method: "GET",
        target: "/apis/discovery.k8s.io/v1/endpointslices"
            + "?allowWatchBookmarks=true&resourceVersion=48213377&timeout=7m38s&timeoutSeconds=458&watch=true",
        allowed: true),
    RequestCase(
        name: "list services (limit)", method: "GET",
        target: "/api/v1/services?limit=500&resourceVersion=0",
        allowed: true),
    RequestCase(
        name: "get pod (namespaced)", method: "GET",
        target: "/api/v1/namespaces/istio-system/pods/istiod-7f9c8d6b5-x2x7q",
        allowed: true),
    RequestCase(
        name: "watch virtualservices (istio)", method: "GET",
        target: "/apis/networking.istio.io/v1/virtualservices"
            + "?allowWatchBookmarks=true&resourceVersion=48213377&timeout=9m12s&timeoutSeconds=552&watch=true",
        allowed: true),
    RequestCase(
        name: "GET /version", method: "GET",
        target: "/version",
        allowed: true),
    RequestCase(
        name: "list configmaps (denied)", method: "GET",
        target: "/api/v1/configmaps?limit=500&resourceVersion=0",
        allowed: false),
]

/// The longest target of ``requestCases``: the one `Parse only` measures.
public let longestRequestCase = requestCases.max { $0.target.utf8.count < $1.target.utf8.count }!
/// The denied request, which tries every rule before it is refused.
public let deniedRequestCase = requestCases.first { !$0.allowed }!

/// The shipped policies, loaded from disk as the proxy loads them, with every
/// case's expected verdict checked.
public func loadShippedPolicies() -> PolicySet {
    let policy: PolicySet
    do {
        policy = try PolicySet.load(directory: shippedPoliciesDirectory)
    } catch {
        fatalError("cannot load the shipped policies from \(shippedPoliciesDirectory): \(error)")
    }
    for request in requestCases {
        let attributes: RequestAttributes
        do {
            attributes = try RequestAttributes(method: request.method, target: request.target)
        } catch {
            fatalError("\(request.name): \(request.target) was rejected: \(error)")
        }
        let decision = policy.decide(attributes, peer: peerUUID)
        precondition(
            decision.allowed == request.allowed,
            "\(request.name): expected allowed=\(request.allowed), got \(decision.allowed) (\(decision.reason))")
    }
    return policy
}

/// Everything the token benchmarks share: one peer, one key, one token.
public struct TokenFixture: Sendable {
    public let key: SigningKeyPair
    public let verifier: TokenVerifier
    public let token: BearerToken
    public let claims: TokenClaims
    /// The same check done with swift-crypto alone: the key, the JWS signing
    /// input (`header.payload` as ASCII) and the decoded 64-byte signature.
    public let bareKey: Curve25519.Signing.PublicKey
    public let signingInput: [UInt8]
    public let signature: [UInt8]

    public init() {
        key = SigningKeyPair()
        do {
            let peer = try TrustedPeer(clusterUUID: peerUUID, keys: [key.publicKey], rootCA: rootCA)
            verifier = TokenVerifier(localClusterUUID: localUUID, peers: try TrustedPeers([peer]))
        } catch {
            fatalError("fixture peers: \(error)")
        }
        claims = TokenClaims(subject: peerUUID, audience: localUUID, scope: .api, now: now, lifetime: 3600)
        token = BearerToken(mint(claims, with: key))

        let parts = token.rawValue.split(separator: ".", omittingEmptySubsequences: false)
        precondition(parts.count == 3, "minted token is not a compact JWS")
        signingInput = Array(token.rawValue.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        signature = Self.decodeBase64URL(parts[2])
        do {
            bareKey = try Curve25519.Signing.PublicKey(rawRepresentation: key.publicKey.rawRepresentation)
        } catch {
            fatalError("fixture key: \(error)")
        }
        precondition(signature.count == 64, "signature is not 64 bytes")
        precondition(bareKey.isValidSignature(signature, for: signingInput), "bare verify fails on the fixture")
        do {
            _ = try verifier.verify(token, scope: .api, now: now)
        } catch {
            fatalError("fixture token does not verify: \(error)")
        }
    }

    /// A cache holding this fixture's token, checked to answer from memory.
    public func warmCache() -> VerifiedTokenCache {
        let cache = VerifiedTokenCache()
        do {
            _ = try verifier.verify(token, scope: .api, now: now, cache: cache)
            _ = try verifier.verify(token, scope: .api, now: now, cache: cache)
        } catch {
            fatalError("warming the cache failed: \(error)")
        }
        let statistics = cache.statistics
        precondition(statistics.misses == 1 && statistics.hits == 1, "cache not warm: \(statistics)")
        return cache
    }

    /// base64url without padding, via Foundation (setup only, not measured).
    private static func decodeBase64URL(_ text: Substring) -> [UInt8] {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64) else { fatalError("bad base64url in fixture") }
        return Array(data)
    }
}
