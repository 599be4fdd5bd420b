import Foundation
import Crypto
import Testing
@testable import IsthmusTrust

@Suite("Token verification")
struct TokenVerifierTests {
    let verifier = Fixtures.verifier()
    let now = Fixtures.now
    let local = Fixtures.localUUID
    let peer = Fixtures.peerUUID

    /// A payload in hand-written JSON, signed with key 1 by swift-crypto directly.
    func token(header: String = #"{"alg":"EdDSA"}"#, _ payload: String, key: SigningKeyPair = Fixtures.key1) -> BearerToken {
        BearerToken(Fixtures.handMadeToken(header: header, payload: payload, key: key))
    }

    func standardPayload(
        aud: String? = nil, exp: String = "1700003600", nbf: String? = "1700000000", scope: String = #""api""#,
        sub: String? = nil
    ) -> String {
        var members = [
            #""aud":\#(aud ?? "\"\(local)\"")"#, #""exp":\#(exp)"#, #""iss":"d8-istio""#,
            #""scope":\#(scope)"#, #""sub":\#(sub ?? "\"\(peer)\"")"#,
        ]
        if let nbf { members.append(#""nbf":\#(nbf)"#) }
        return "{" + members.joined(separator: ",") + "}"
    }

    func failure(_ token: BearerToken, scope: TokenScope = .api, at time: Int64? = nil, verifier: TokenVerifier? = nil) -> TokenFailure? {
        do {
            _ = try (verifier ?? self.verifier).verify(token, scope: scope, now: time ?? now)
            return nil
        } catch {
            return error
        }
    }

    // MARK: the issuer

    @Test("a token whose iss is not an accepted issuer, or has none, is refused after its signature checks")
    func issuer() throws {
        let other = standardPayload().replacingOccurrences(of: #""iss":"d8-istio""#, with: #""iss":"ci-robot""#)
        #expect(failure(token(other)) == .wrongIssuer(peer: peer, presented: #""ci-robot""#))
        let none = standardPayload().replacingOccurrences(of: #""iss":"d8-istio","#, with: "")
        #expect(!none.contains("iss"))
        #expect(failure(token(none)) == .wrongIssuer(peer: peer, presented: "(missing)"))
        #expect(failure(token(other))?.description == #"token from peer \#(peer) has issuer "ci-robot", which is not accepted"#)
        // A forged signature is still reported as such: the issuer says nothing to a forger.
        #expect(failure(token(other, key: SigningKeyPair())) == .badSignature(peer: peer))

        let both = TokenVerifier(localClusterUUID: local, peers: verifier.peers, acceptedIssuers: ["d8-istio", "ci-robot"])
        #expect(failure(token(other), verifier: both) == nil)
        #expect(failure(token(standardPayload()), verifier: both) == nil)
        let onlyOther = TokenVerifier(localClusterUUID: local, peers: verifier.peers, acceptedIssuers: ["ci-robot"])
        #expect(failure(token(standardPayload()), verifier: onlyOther) == .wrongIssuer(peer: peer, presented: #""d8-istio""#))
    }

    @Test("a cached verdict does not survive a change of accepted issuers")
    func issuerAndCache() throws {
        let cache = VerifiedTokenCache()
        let other = token(standardPayload().replacingOccurrences(of: #""iss":"d8-istio""#, with: #""iss":"ci-robot""#))
        let lenient = TokenVerifier(localClusterUUID: local, peers: verifier.peers, acceptedIssuers: ["d8-istio", "ci-robot"])
        _ = try lenient.verify(other, scope: .api, now: now, cache: cache)
        #expect(cache.contains(other))
        #expect(throws: TokenFailure.wrongIssuer(peer: peer, presented: #""ci-robot""#)) {
            try verifier.verify(other, scope: .api, now: now, cache: cache)
        }
    }

    @Test("FuzzToken's finding: \")\" and 93 NUL bytes is refused as malformed, and the refusal holds none of its bytes")
    func nulAfterParen() {
        let raw = ")" + String(repeating: "\u{0}", count: 93)
        let refusal = failure(BearerToken(raw))
        #expect(refusal == .malformed(.notCompactSerialization))
        // Compared as bytes: Foundation's String search stops at a NUL and "found" the `)` of the message.
        let message = Array((refusal?.description ?? "").utf8), token = Array(raw.utf8)
        #expect(!(0...(max(0, message.count - token.count))).contains { message.count >= token.count && Array(message[$0..<($0 + token.count)]) == token })
    }

    // MARK: tokens from other implementations

    @Test("a token made by OpenSSL (Go-ordered claims) verifies")
    func openSSLToken() throws {
        let verified = try verifier.verify(BearerToken(Fixtures.openSSLMintedToken), scope: .api, now: now)
        #expect(verified.peer == peer)
        #expect(verified.expiresAt == 1_700_003_600)
        #expect(verified.claims == TokenClaims(
            issuer: "d8-istio", subject: peer, audience: local, scope: .api, notBefore: 1_700_000_000, expiresAt: 1_700_003_600))
    }

    @Test("a JWS built byte by byte per RFC 7515/8037 (other key order, kid, typ, whitespace) verifies")
    func handBuilt() throws {
        // Header with kid and typ, members in another order; claims in another
        // order with whitespace, an extra claim (iat) and escapes.
        let header = #"{"kid":"key-2024","typ":"JWT","alg":"EdDSA"}"#
        let payload = """
            { "sub" : "\(peer)", "scope": "api",
              "exp": 1700003600, "nbf": 1700000000, "iat": 1700000000,
              "aud": "\(local)", "iss": "d8\\u002distio" }
            """
        let signingInput = Fixtures.base64url(header) + "." + Fixtures.base64url(payload)
        let privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: Fixtures.openSSLSeed1)
        let signature = try privateKey.signature(for: Array(signingInput.utf8))
        let token = BearerToken(signingInput + "." + Fixtures.base64url(Array(signature)))

        let verified = try verifier.verify(token, scope: .api, now: now)
        #expect(verified.peer == peer)
        #expect(verified.claims.issuer == "d8-istio")
        #expect(verified.claims.notBefore == 1_700_000_000)
    }

    @Test("a token minted here verifies, and yields the claims it was minted with")
    func roundTrip() throws {
        for scope in TokenScope.allCases {
            let claims = Fixtures.claims(scope: scope)
            let verified = try verifier.verify(BearerToken(mint(claims, with: Fixtures.key1)), scope: scope, now: now)
            #expect(verified == VerifiedToken(peer: peer, claims: claims))
        }
    }

    // MARK: algorithm pinning

    @Test("alg none is refused by name, before the peer is even looked up")
    func algNone() {
        let unsigned = Fixtures.base64url(#"{"alg":"none"}"#) + "." + Fixtures.base64url(standardPayload()) + "."
        #expect(failure(BearerToken(unsigned)) == .unsupportedAlgorithm("\"none\""))
        // Same with an unknown subject: had the peer been looked up first this
        // would say unknownPeer.
        let unknown = Fixtures.base64url(#"{"alg":"none"}"#) + "." + Fixtures.base64url(standardPayload(sub: #""nobody""#)) + "."
        #expect(failure(BearerToken(unknown)) == .unsupportedAlgorithm("\"none\""))
        // And with claims that would not even parse: the algorithm is checked first.
        let garbageClaims = Fixtures.base64url(#"{"alg":"none"}"#) + "." + Fixtures.base64url("not json") + "."
        #expect(failure(BearerToken(garbageClaims)) == .unsupportedAlgorithm("\"none\""))
    }

    @Test("HS256 keyed with the peer's public key (key confusion) is refused before any key is used")
    func algHS256() {
        let signingInput = Fixtures.base64url(#"{"alg":"HS256","typ":"JWT"}"#) + "." + Fixtures.base64url(standardPayload())
        // The classic attack: HMAC with the verifier's public key as the secret.
        for secret in [Fixtures.key1.publicKey.rawRepresentation, Array(Fixtures.openSSLPublicKey1.utf8)] {
            let mac = HMAC<SHA256>.authenticationCode(for: Array(signingInput.utf8), using: SymmetricKey(data: secret))
            let forged = BearerToken(signingInput + "." + Fixtures.base64url(Array(mac)))
            #expect(failure(forged) == .unsupportedAlgorithm("\"HS256\""))
        }
        // The peer named by sub is trusted, so the key lookup would have succeeded.
        #expect(verifier.peers[peer] != nil)
    }

    @Test("other algorithm spellings are refused", arguments: [
        (#"{"alg":"eddsa"}"#, "\"eddsa\""),
        (#"{"alg":"Ed25519"}"#, "\"Ed25519\""),
        (#"{"alg":"ES256"}"#, "\"ES256\""),
        (#"{"alg":"RS256"}"#, "\"RS256\""),
        (#"{"alg":"EdDSA "}"#, "\"EdDSA \""),
        (#"{"typ":"JWT"}"#, "(missing)"),
        (#"{"alg":1}"#, "(a number)"),
        (#"{"alg":["EdDSA"]}"#, "(an array)"),
        (#"{"alg":null}"#, "(null)"),
    ])
    func otherAlgorithms(header: String, reported: String) {
        #expect(failure(token(header: header, standardPayload())) == .unsupportedAlgorithm(reported))
    }

    @Test("a crit header is refused even when correctly signed")
    func crit() {
        let critical = token(header: #"{"alg":"EdDSA","crit":["exp"],"exp":1}"#, standardPayload())
        #expect(failure(critical) == .criticalHeader)
    }

    @Test("header parameters naming keys (jwk, jku, x5u, kid) never select a key")
    func embeddedKeysIgnored() {
        // Signed with key 2 and carrying key 2 as an embedded JWK: still checked against key 1.
        let header = #"{"alg":"EdDSA","kid":"other","jku":"https://evil/jwks","jwk":{"kty":"OKP","crv":"Ed25519","x":"\#(Fixtures.base64url(Fixtures.key2.publicKey.rawRepresentation))"}}"#
        #expect(failure(token(header: header, standardPayload(), key: Fixtures.key2)) == .badSignature(peer: peer))
    }

    // MARK: malformed tokens

    @Test("structurally broken tokens are malformed")
    func structure() {
        #expect(failure(BearerToken("")) == .malformed(.notCompactSerialization))
        #expect(failure(BearerToken("abc")) == .malformed(.notCompactSerialization))
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken + " ")) == .malformed(.notCompactSerialization))
        #expect(failure(BearerToken(String(repeating: "a", count: 8193))) == .malformed(.tooLong(limit: 8192)))
        let parts = Fixtures.openSSLMintedToken.split(separator: ".").map(String.init)
        #expect(failure(BearerToken(parts[0] + "A." + parts[1] + "." + parts[2])) == .malformed(.invalidBase64(part: "header")))
        #expect(failure(BearerToken(parts[0] + "." + parts[1] + "A." + parts[2])) == .malformed(.invalidBase64(part: "claims")))
        #expect(failure(token(header: "not json", standardPayload())) == .malformed(.headerNotJSONObject))
        #expect(failure(token(header: #"["EdDSA"]"#, standardPayload())) == .malformed(.headerNotJSONObject))
        #expect(failure(token("[1]")) == .malformed(.claimsNotJSONObject))
        #expect(failure(token("{")) == .malformed(.claimsNotJSONObject))
    }

    @Test("a duplicated member name makes the token malformed, in header and claims")
    func duplicates() {
        // Go's encoding/json would take the last "alg"/"aud"; others the first. We take neither.
        #expect(failure(token(header: #"{"alg":"EdDSA","alg":"none"}"#, standardPayload())) == .malformed(.headerNotJSONObject))
        let twoAudiences = #"{"aud":"\#(local)","aud":"other","exp":1700003600,"scope":"api","sub":"\#(peer)"}"#
        #expect(failure(token(twoAudiences)) == .malformed(.claimsNotJSONObject))
    }

    @Test("each required claim must be present", arguments: ["sub", "aud", "scope", "exp"])
    func missingClaim(name: String) {
        var members = [
            "sub": "\"\(Fixtures.peerUUID)\"", "aud": "\"\(Fixtures.localUUID)\"", "scope": "\"api\"", "exp": "1700003600",
        ]
        members[name] = nil
        let payload = "{" + members.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        #expect(failure(token(payload)) == .malformed(.missingClaim(name)))
    }

    @Test("claims with the wrong JSON type are malformed; numeric dates must be integers", arguments: [
        ("exp", #""exp":1700003600.0"#), ("exp", #""exp":17000036e2"#), ("exp", #""exp":"1700003600""#),
        ("exp", #""exp":9223372036854775808"#), ("exp", #""exp":null"#),
        ("nbf", #""nbf":1700000000.5"#), ("nbf", #""nbf":"0""#),
        ("aud", #""aud":1"#), ("aud", #""aud":[1]"#), ("aud", #""aud":{"a":1}"#),
        ("sub", #""sub":1"#), ("scope", #""scope":["api"]"#), ("iss", #""iss":false"#),
    ])
    func wrongTypes(name: String, member: String) {
        var members = [
            "sub": #""sub":"\#(Fixtures.peerUUID)""#, "aud": #""aud":"\#(Fixtures.localUUID)""#,
            "scope": #""scope":"api""#, "exp": #""exp":1700003600"#,
        ]
        members[name] = member
        let payload = "{" + members.values.joined(separator: ",") + "}"
        #expect(failure(token(payload)) == .malformed(.invalidClaim(name)))
    }

    // MARK: peers and signatures

    @Test("a subject that is not a trusted peer is refused before the signature is checked")
    func unknownPeer() {
        #expect(failure(token(standardPayload(sub: #""stranger""#))) == .unknownPeer("\"stranger\""))
        // Same with no peers at all.
        let empty = Fixtures.verifier(peers: .empty)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), verifier: empty) == .unknownPeer("\"\(peer)\""))
    }

    @Test("an unknown subject is not echoed when it is long or unprintable")
    func unknownPeerSanitised() throws {
        let hostile = String(repeating: "x", count: 100)
        let refused = try #require(failure(token(standardPayload(sub: "\"\(hostile)\""))))
        #expect(refused == .unknownPeer("(100 bytes, not shown)"))
        let lineBreak = try #require(self.failure(token(standardPayload(sub: #""a\nINFO forged""#))))
        #expect(!lineBreak.description.contains("\n"))
    }

    @Test("a token signed with another peer's key is refused as a bad signature")
    func badSignature() {
        // sub names peer 1, signed with key 2 (which is trusted, but for the other peer).
        #expect(failure(token(standardPayload(), key: Fixtures.key2)) == .badSignature(peer: peer))
        // A fresh key nobody trusts.
        #expect(failure(token(standardPayload(), key: SigningKeyPair())) == .badSignature(peer: peer))
        // An empty signature.
        let unsigned = Fixtures.base64url(#"{"alg":"EdDSA"}"#) + "." + Fixtures.base64url(standardPayload()) + "."
        #expect(failure(BearerToken(unsigned)) == .badSignature(peer: peer))
    }

    @Test("changing any claim breaks the signature")
    func tamperedClaims() {
        let parts = Fixtures.openSSLMintedToken.split(separator: ".").map(String.init)
        let forgedPayload = Fixtures.base64url(standardPayload(exp: "1800000000"))
        #expect(failure(BearerToken(parts[0] + "." + forgedPayload + "." + parts[2])) == .badSignature(peer: peer))
    }

    @Test("key rotation: a peer with two keys accepts tokens by either; a removed key stops working")
    func rotation() throws {
        let rotating = Fixtures.peers([Fixtures.peer(peer, keys: [Fixtures.key1.publicKey, Fixtures.key2.publicKey])])
        let during = Fixtures.verifier(peers: rotating)
        let byOld = BearerToken(mint(Fixtures.claims(), with: Fixtures.key1))
        let byNew = BearerToken(mint(Fixtures.claims(), with: Fixtures.key2))
        #expect(throws: Never.self) { try during.verify(byOld, scope: .api, now: now) }
        #expect(throws: Never.self) { try during.verify(byNew, scope: .api, now: now) }

        let after = Fixtures.verifier(peers: Fixtures.peers([Fixtures.peer(peer, keys: [Fixtures.key2.publicKey])]))
        #expect(failure(byOld, verifier: after) == .badSignature(peer: peer))
        #expect(throws: Never.self) { try after.verify(byNew, scope: .api, now: now) }
    }

    // MARK: audience

    @Test("aud as a one-element array naming us is accepted")
    func audienceArray() throws {
        let verified = try verifier.verify(token(standardPayload(aud: #"["\#(local)"]"#)), scope: .api, now: now)
        #expect(verified.claims.audience == local)
    }

    @Test("aud naming another cluster, several clusters, or none is refused", arguments: [
        #""someone-else""#, #"["someone-else"]"#, #"["\#(Fixtures.localUUID)","someone-else"]"#,
        #"["someone-else","\#(Fixtures.localUUID)"]"#, "[]", #""""#, #""\#(Fixtures.localUUID.uppercased())""#,
    ])
    func wrongAudience(aud: String) {
        #expect(failure(token(standardPayload(aud: aud))) == .wrongAudience(peer: Fixtures.peerUUID))
    }

    // MARK: scope

    @Test("a token for another scope is refused, naming both scopes")
    func wrongScope() throws {
        let apiToken = BearerToken(Fixtures.openSSLMintedToken)
        #expect(failure(apiToken, scope: .privateMulticluster)
            == .wrongScope(peer: peer, presented: "\"api\"", required: .privateMulticluster))
        let admin = token(standardPayload(scope: #""admin""#))
        for scope in TokenScope.allCases {
            #expect(failure(admin, scope: scope) == .wrongScope(peer: peer, presented: "\"admin\"", required: scope))
        }
        let description = try #require(failure(apiToken, scope: .privateFederation)).description
        #expect(description == "token from peer \(peer) has scope \"api\", this endpoint requires \"private-federation\"")
    }

    // MARK: time

    @Test("exp with leeway: exp + leeway - 1 is the last accepted second")
    func expiryBoundary() {
        let exp: Int64 = 1_700_003_600
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: exp + 59) == nil)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: exp + 60) == .expired(peer: peer, expiresAt: exp))
        // Without leeway, RFC 7519 §4.1.4: refused "on or after" exp.
        let strict = Fixtures.verifier(leeway: .zero)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: exp - 1, verifier: strict) == nil)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: exp, verifier: strict) == .expired(peer: peer, expiresAt: exp))
    }

    @Test("nbf with leeway: nbf - leeway is the first accepted second")
    func notBeforeBoundary() {
        let nbf: Int64 = 1_700_000_000
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: nbf - 60) == nil)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: nbf - 61) == .notYetValid(peer: peer, notBefore: nbf))
        let strict = Fixtures.verifier(leeway: .zero)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: nbf, verifier: strict) == nil)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: nbf - 1, verifier: strict) == .notYetValid(peer: peer, notBefore: nbf))
    }

    @Test("leeway is configurable, in whole seconds")
    func customLeeway() {
        let generous = Fixtures.verifier(leeway: .seconds(300))
        #expect(generous.leewaySeconds == 300)
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), at: 1_700_003_600 + 299, verifier: generous) == nil)
        #expect(Fixtures.verifier(leeway: .milliseconds(1500)).leewaySeconds == 1)
    }

    @Test("nbf is optional; exp is not")
    func optionalNotBefore() {
        let noNbf = token(standardPayload(nbf: nil))
        #expect(failure(noNbf, at: Int64.min) == nil)
        #expect(failure(noNbf, at: 1_700_003_600 + 60) == .expired(peer: peer, expiresAt: 1_700_003_600))
    }

    @Test("extreme exp and nbf values do not overflow")
    func extremes() {
        let forever = token(standardPayload(exp: "9223372036854775807", nbf: "-9223372036854775808"))
        #expect(failure(forever, at: Int64.max - 1) == nil)
        #expect(failure(forever, at: Int64.min) == nil)
        // Int64.max itself is the first refused second: exp + leeway saturates there.
        #expect(failure(forever, at: Int64.max) == .expired(peer: peer, expiresAt: Int64.max))
        let past = token(standardPayload(exp: "-9223372036854775808", nbf: nil))
        #expect(failure(past) == .expired(peer: peer, expiresAt: Int64.min))
    }

    // MARK: order of checks

    @Test("checks run in the documented order")
    func order() {
        // Bad signature and wrong audience: the signature is checked first.
        #expect(failure(token(standardPayload(aud: #""x""#), key: Fixtures.key2)) == .badSignature(peer: peer))
        // Wrong audience and wrong scope: audience first.
        #expect(failure(token(standardPayload(aud: #""x""#)), scope: .privateMulticluster) == .wrongAudience(peer: peer))
        // Wrong scope and expired: scope first.
        #expect(failure(BearerToken(Fixtures.openSSLMintedToken), scope: .privateMulticluster, at: Int64.max)
            == .wrongScope(peer: peer, presented: "\"api\"", required: .privateMulticluster))
        // Unknown peer and malformed exp: claims are parsed first.
        #expect(failure(token(standardPayload(exp: "1.5", sub: #""nobody""#))) == .malformed(.invalidClaim("exp")))
    }

    // MARK: descriptions

    @Test("failure descriptions are short sentences without the token or signature")
    func descriptions() {
        let signature = String(Fixtures.openSSLMintedToken.split(separator: ".")[2])
        let failures: [TokenFailure] = [
            .malformed(.tooLong(limit: 8192)), .malformed(.notCompactSerialization),
            .malformed(.invalidBase64(part: "header")), .malformed(.headerNotJSONObject),
            .malformed(.claimsNotJSONObject), .malformed(.missingClaim("exp")), .malformed(.invalidClaim("nbf")),
            .unsupportedAlgorithm("\"none\""), .criticalHeader, .unknownPeer("\"x\""), .badSignature(peer: peer),
            .wrongAudience(peer: peer), .wrongScope(peer: peer, presented: "\"api\"", required: .privateMulticluster),
            .expired(peer: peer, expiresAt: 1), .notYetValid(peer: peer, notBefore: 2),
        ]
        #expect(Set(failures).count == failures.count)
        for failure in failures {
            let text = failure.description
            #expect(!text.isEmpty && text.count < 120, "\(text)")
            #expect(!text.contains("eyJ"))
            #expect(!text.contains(signature))
        }
        #expect(TokenFailure.expired(peer: peer, expiresAt: 5).description == "token from peer \(peer) expired at 5")
        #expect(TokenFailure.unsupportedAlgorithm("\"none\"").description == "token algorithm \"none\" is not accepted; only EdDSA is")
    }
}
