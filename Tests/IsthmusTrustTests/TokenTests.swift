import Crypto
import IsthmusKubeTypes
import Testing
@testable import IsthmusTrust

@Suite("Tokens: minting, bearer tokens, the JWS layer")
struct TokenTests {
    // MARK: minting

    @Test("a minted token has header {\"alg\":\"EdDSA\"} and the claims in Go's key order")
    func mintedShape() throws {
        let token = mint(Fixtures.claims(), with: Fixtures.key1)
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        #expect(parts.count == 3)
        #expect(parts[0] == "eyJhbGciOiJFZERTQSJ9")  // {"alg":"EdDSA"}
        let payload = try #require(Base64.decodeURL(Array(parts[1].utf8)))
        #expect(String(decoding: payload, as: UTF8.self)
            == #"{"aud":"\#(Fixtures.localUUID)","exp":1700003600,"iss":"d8-istio","nbf":1700000000,"scope":"api","sub":"\#(Fixtures.peerUUID)"}"#)
        #expect(!token.contains("="))
    }

    @Test("minting the OpenSSL token's claims with the same key reproduces it byte for byte")
    func matchesOpenSSL() {
        // Ed25519 is deterministic, and our header and claims serialisation
        // match the hand-written (Go-ordered) JSON the OpenSSL token signs.
        let token = mint(Fixtures.claims(), with: Fixtures.key1)
        #expect(token == Fixtures.openSSLMintedToken)
    }

    @Test("kid goes into the header after alg")
    func keyID() throws {
        let token = mint(Fixtures.claims(), with: Fixtures.key1, keyID: "2024-rotation")
        let header = try #require(Base64.decodeURL(Array(token.split(separator: ".")[0].utf8)))
        #expect(String(decoding: header, as: UTF8.self) == #"{"alg":"EdDSA","kid":"2024-rotation"}"#)
        #expect(throws: Never.self) {
            try Fixtures.verifier().verify(BearerToken(token), scope: .api, now: Fixtures.now)
        }
    }

    @Test("the default issuer is d8-istio; an empty issuer and a nil nbf are left out (and a missing iss is refused by default)")
    func optionalClaims() throws {
        #expect(Fixtures.claims().issuer == "d8-istio")
        var claims = Fixtures.claims(notBefore: nil)
        claims.issuer = ""
        let token = mint(claims, with: Fixtures.key1)
        let payload = try #require(Base64.decodeURL(Array(token.split(separator: ".")[1].utf8)))
        let text = String(decoding: payload, as: UTF8.self)
        #expect(!text.contains("iss"))
        #expect(!text.contains("nbf"))
        // Verifies only where an empty issuer is explicitly accepted: the default accepts d8-istio alone.
        #expect(throws: TokenFailure.self) { try Fixtures.verifier().verify(BearerToken(token), scope: .api, now: Fixtures.now) }
        let lenient = TokenVerifier(localClusterUUID: Fixtures.localUUID, peers: Fixtures.verifier().peers, acceptedIssuers: [""])
        let verified = try lenient.verify(BearerToken(token), scope: .api, now: Fixtures.now)
        #expect(verified.claims == claims)
    }

    @Test("claims from now and a lifetime: nbf = now, exp = now + lifetime, saturating")
    func lifetimeClaims() {
        let claims = TokenClaims(subject: "a", audience: "b", scope: .api, now: 100, lifetime: 60)
        #expect(claims.notBefore == 100)
        #expect(claims.expiresAt == 160)
        #expect(TokenClaims(subject: "a", audience: "b", scope: .api, now: Int64.max - 1, lifetime: 60).expiresAt == Int64.max)
    }

    @Test("scopes have Deckhouse's names")
    func scopeNames() {
        #expect(TokenScope.allCases.map(\.rawValue) == ["api", "private-multicluster", "private-federation"])
    }

    // MARK: bearer tokens

    @Test("a bearer token never prints itself")
    func redacted() {
        let token = BearerToken(Fixtures.openSSLMintedToken)
        #expect(token.description == "<redacted>")
        #expect("\(token)" == "<redacted>")
        #expect(String(reflecting: token) == "<redacted>")
        var dumped = ""
        dump(token, to: &dumped)
        #expect(!dumped.contains("eyJ"))
        #expect(Mirror(reflecting: token).children.isEmpty)
        #expect(token.rawValue == Fixtures.openSSLMintedToken)
    }

    @Test("Authorization: Bearer parsing follows RFC 6750")
    func authorizationHeader() {
        #expect(BearerToken(authorizationHeader: "Bearer abc.def.ghi")?.rawValue == "abc.def.ghi")
        #expect(BearerToken(authorizationHeader: "bearer abc")?.rawValue == "abc")
        #expect(BearerToken(authorizationHeader: "BEARER   abc ")?.rawValue == "abc")
        for bad in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "Bearer a b", "Bearer a\tb", "", "Bearer\tabc", "xBearer abc"] {
            #expect(BearerToken(authorizationHeader: bad) == nil, "\(bad)")
        }
    }

    // MARK: the JWS layer

    @Test("RFC 8037 A.4: the Ed25519 JWS signature verifies with the A.1 key")
    func rfc8037() throws {
        // RFC 8037 A.1, the public key "x" of the OKP JWK.
        let x = try #require(Base64.decodeURL(Array("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".utf8)))
        let key = try PeerPublicKey(rawRepresentation: x)
        // And its private key "d" derives that public key.
        let d = try #require(Base64.decodeURL(Array("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A".utf8)))
        #expect(try SigningKeyPair(seed: d).publicKey == key)

        let jws = try CompactJWS(
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
            maximumLength: 8192)
        #expect(Base64.decodeURL(jws.payloadPart) == Array("Example of Ed25519 signing".utf8))
        #expect(jws.isSignatureValid(with: [key]))
        #expect(!jws.isSignatureValid(with: [Fixtures.key1.publicKey]))
        #expect(jws.isSignatureValid(with: [Fixtures.key1.publicKey, key]))

        // RFC 8037 A.4 also fixes the signature itself (Ed25519 is deterministic).
        let signed = try SigningKeyPair(seed: d).signature(for: Array(jws.signingInput))
        #expect(Base64.encodeURL(signed) == "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
    }

    @Test("a tampered payload or signature fails at the JWS layer")
    func tampered() throws {
        let token = Fixtures.openSSLMintedToken
        let parts = token.split(separator: ".").map(String.init)
        var signature = Array(parts[2].utf8)
        signature[10] = signature[10] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let badSignature = try CompactJWS(parts[0] + "." + parts[1] + "." + String(decoding: signature, as: UTF8.self), maximumLength: 8192)
        #expect(!badSignature.isSignatureValid(with: [Fixtures.key1.publicKey]))
        let otherPayload = Fixtures.base64url(#"{"sub":"x"}"#)
        let badPayload = try CompactJWS(parts[0] + "." + otherPayload + "." + parts[2], maximumLength: 8192)
        #expect(!badPayload.isSignatureValid(with: [Fixtures.key1.publicKey]))
        let short = try CompactJWS(parts[0] + "." + parts[1] + "." + String(parts[2].dropLast(4)), maximumLength: 8192)
        #expect(!short.isSignatureValid(with: [Fixtures.key1.publicKey]))
    }

    @Test("compact serialization is parsed strictly")
    func strictSplit() {
        let valid = Fixtures.openSSLMintedToken
        let malformed: [String] = [
            "", ".", "..", "a.b", "a.b.c.d", ".b.c", "a..c",
            valid + "=", valid.replacing(".", with: " ."), " " + valid, valid + "\n",
            valid.replacing("eyJhbGciOiJFZERTQSJ9", with: "eyJhbGciOiJFZERTQSJ9=="),
            valid.replacing("-", with: "+"),
        ]
        for token in malformed {
            #expect(throws: TokenFailure.malformed(.notCompactSerialization), "\(token.prefix(20))") {
                try CompactJWS(token, maximumLength: 8192)
            }
        }
        #expect(throws: TokenFailure.malformed(.tooLong(limit: 100))) { try CompactJWS(valid, maximumLength: 100) }
        // An empty signature part is allowed through this layer (alg: none is refused later, by name).
        #expect((try? CompactJWS("eyJhbGciOiJub25lIn0.e30.", maximumLength: 8192)) != nil)
    }
}
