import Crypto
@testable import IsthmusTrust

/// Shared test material. The keys below were generated with OpenSSL 3.0
/// (`openssl genpkey -algorithm ed25519`, `openssl pkey -pubout`) and pasted
/// here verbatim, so the tests prove interoperability with OpenSSL's
/// encoding, not just a round trip through our own code.
enum Fixtures {
    // MARK: OpenSSL-generated Ed25519 keys

    static let openSSLPrivateKey1 = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEIGe58GQB4T0Ol3aor+St5KYgbcPsJiHF67o9K/qNB56z
        -----END PRIVATE KEY-----

        """
    static let openSSLPublicKey1 = """
        -----BEGIN PUBLIC KEY-----
        MCowBQYDK2VwAyEAIM6jEwUCJOOYZ/hOHiI9KGG/y7KaesCh5TALzRkjo0g=
        -----END PUBLIC KEY-----

        """
    /// `openssl pkey -text` of key 1: the seed and public key bytes.
    static let openSSLSeed1 = hex("67b9f06401e13d0e9776a8afe4ade4a6206dc3ec2621c5ebba3d2bfa8d079eb3")
    static let openSSLRawPublic1 = hex("20cea313050224e39867f84e1e223d2861bfcbb29a7ac0a1e5300bcd1923a348")

    static let openSSLPrivateKey2 = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VwBCIEICyMQHMlOi1UjY+2yJtRD2yUKJQJkTEIFkPSUrFTmwYH
        -----END PRIVATE KEY-----

        """
    static let openSSLPublicKey2 = """
        -----BEGIN PUBLIC KEY-----
        MCowBQYDK2VwAyEAdFxw18OTMPZkz0f1V1E5xRw1b/qyB+pVyzeGn1VPyPY=
        -----END PUBLIC KEY-----

        """

    // MARK: keys of other algorithms (OpenSSL-generated)

    static let p256PublicKey = """
        -----BEGIN PUBLIC KEY-----
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE5nmRrMxY4BJznt4QvRSBjKxV3MXl
        UZ3ooN12QozuUvMbr3Faw0K0UsoTdNheneMmp9JsNK+mgeC7a1RkiH2WVQ==
        -----END PUBLIC KEY-----

        """
    static let rsaPublicKey = """
        -----BEGIN PUBLIC KEY-----
        MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCY8qvV/c/Qc7tdy4gm1xtlC0cr
        Q/T/QS6ezBr1/R+0UvBWLhC+nn5FLVhnLHlCCNo9DthfSijgjRLihvLpd5Y02M/o
        n0JkQUf/tlqsaKJSgfAW/A9VYWgt5quPTuXGJoB4qX8V3qgJ+1VNtLJ2Bw21lBJx
        8zhDCT72eY/1PiX99wIDAQAB
        -----END PUBLIC KEY-----

        """
    static let ed448PublicKey = """
        -----BEGIN PUBLIC KEY-----
        MEMwBQYDK2VxAzoAntUqVNUvLJuJmggc8CyDtBIXLFSwUKrCz3eFd7XT9+OYk2Gb
        hx+T3PCIMxNxV6hoM1Glor9uc9mA
        -----END PUBLIC KEY-----

        """
    static let x25519PublicKey = """
        -----BEGIN PUBLIC KEY-----
        MCowBQYDK2VuAyEA354yZD4iXrjDdoricH0pBW4v2CUqhENIfRGJ/wUkXGc=
        -----END PUBLIC KEY-----

        """
    static let x25519PrivateKey = """
        -----BEGIN PRIVATE KEY-----
        MC4CAQAwBQYDK2VuBCIEIGj0GI1tcLNDmaRqkpfoA1sU7BsmeA7F5P4vs6xqBeNW
        -----END PRIVATE KEY-----

        """
    static let p256PrivateKey = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgokoAwDim0C/8I5N1
        ic1sNlBVxJe729LY9GmljHEFew6hRANCAATM9yrsRDFU5gtHun0yySWZx6BtjrvJ
        NMX9WX7vM9BfWUhhQu5Q8PyrbiYR+e4lR37f64GPHNCFa1hwRMAGoytS
        -----END PRIVATE KEY-----

        """

    /// RFC 8410 §10.3: a v2 OneAsymmetricKey with an attribute and the
    /// embedded public key (which, checked with OpenSSL, matches the seed).
    static let rfc8410V2PrivateKey = """
        -----BEGIN PRIVATE KEY-----
        MHICAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
        oB8wHQYKKoZIhvcNAQkJFDEPDA1DdXJkbGUgQ2hhaXJzgSEAGb9ECWmEzf6FQbrB
        Z9w7lshQhqowtrbLDFw4rXAxZuE=
        -----END PRIVATE KEY-----
        """
    static let rfc8410V2RawPublic = hex("19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")

    /// A self-signed Ed25519 CA certificate (OpenSSL), standing in for a
    /// peer's Istio root CA.
    static let rootCA = """
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

    static var key1: SigningKeyPair { load(openSSLPrivateKey1) }
    static var key2: SigningKeyPair { load(openSSLPrivateKey2) }

    static func load(_ pem: String) -> SigningKeyPair {
        do { return try SigningKeyPair(pem: pem) } catch { fatalError("fixture key does not load: \(error)") }
    }

    // MARK: hand-rolled encoders, independent of the module's

    /// RFC 4648 §5 base64url without padding, written separately from the
    /// module's encoder so tests do not check the code with itself.
    static func base64url(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var out = ""
        var i = 0
        while i + 3 <= bytes.count {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            out.append(alphabet[n >> 18 & 63]); out.append(alphabet[n >> 12 & 63])
            out.append(alphabet[n >> 6 & 63]); out.append(alphabet[n & 63])
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = Int(bytes[i]) << 16
            out.append(alphabet[n >> 18 & 63]); out.append(alphabet[n >> 12 & 63])
        } else if rest == 2 {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8
            out.append(alphabet[n >> 18 & 63]); out.append(alphabet[n >> 12 & 63]); out.append(alphabet[n >> 6 & 63])
        }
        return out
    }

    static func base64url(_ text: String) -> String { base64url(Array(text.utf8)) }

    static func sign(_ message: [UInt8], seed key: SigningKeyPair) -> [UInt8] {
        // Re-create the swift-crypto key from the seed so signing bypasses the module.
        let privateKey = try! Curve25519.Signing.PrivateKey(rawRepresentation: Array(key.pkcs8DER.suffix(32)))
        return Array(try! privateKey.signature(for: message))
    }

    static func hex(_ string: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var iterator = string.makeIterator()
        while let high = iterator.next(), let low = iterator.next() {
            bytes.append(UInt8(String([high, low]), radix: 16)!)
        }
        return bytes
    }

    // MARK: peers

    /// "Us": the cluster whose proxy verifies.
    static let localUUID = "6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
    /// The peer that calls us, holding OpenSSL key 1.
    static let peerUUID = "0b7e8f9a-1c2d-4e3f-9a4b-5c6d7e8f9a0b"
    /// Another trusted peer with its own key.
    static let otherPeerUUID = "c4d5e6f7-0a1b-4c2d-8e3f-405162738495"

    static func peer(_ uuid: String, keys: [PeerPublicKey]) -> TrustedPeer {
        do { return try TrustedPeer(clusterUUID: uuid, keys: keys, rootCA: rootCA) } catch {
            fatalError("fixture peer: \(error)")
        }
    }

    static func peers(_ list: [TrustedPeer]) -> TrustedPeers {
        do { return try TrustedPeers(list) } catch { fatalError("fixture peers: \(error)") }
    }

    // MARK: tokens

    /// A token built outside this module: header and claims written by hand
    /// in Go's key order, signed by `openssl pkeyutl -sign -rawin` with key 1,
    /// base64url by `openssl base64 | tr`. Claims:
    /// `{"aud":localUUID,"exp":1700003600,"iss":"d8-istio","nbf":1700000000,"scope":"api","sub":peerUUID}`.
    static let openSSLMintedToken =
        "eyJhbGciOiJFZERTQSJ9.eyJhdWQiOiI2ZjFjMmE4ZS0zYjRkLTRlNWYtOGE5Yi0wYzFkMmUzZjRhNWIiLCJleHAiOjE3MDAwMDM2MDAsImlzcyI6ImQ4LWlzdGlvIiwibmJmIjoxNzAwMDAwMDAwLCJzY29wZSI6ImFwaSIsInN1YiI6IjBiN2U4ZjlhLTFjMmQtNGUzZi05YTRiLTVjNmQ3ZThmOWEwYiJ9.ZeyQeUP6gXMMoupVlyfOQvjSC_TuZ-Ig5ChcAzH3jmItWEouWn1MoC6GqgPJcn80VICMbYO-w1utpenB_4bUDw"

    /// peerUUID trusts key 1, otherPeerUUID trusts key 2.
    static var standardPeers: TrustedPeers {
        peers([peer(peerUUID, keys: [key1.publicKey]), peer(otherPeerUUID, keys: [key2.publicKey])])
    }

    static let now: Int64 = 1_700_000_000

    static func claims(
        subject: String = peerUUID, audience: String = localUUID, scope: TokenScope = .api,
        notBefore: Int64? = now, expiresAt: Int64 = now + 3600
    ) -> TokenClaims {
        TokenClaims(subject: subject, audience: audience, scope: scope, notBefore: notBefore, expiresAt: expiresAt)
    }

    static func verifier(peers: TrustedPeers = standardPeers, leeway: Duration = .seconds(60)) -> TokenVerifier {
        TokenVerifier(localClusterUUID: localUUID, peers: peers, leeway: leeway)
    }

    /// A compact JWS over arbitrary header and payload text, signed with
    /// swift-crypto directly (not the module's minter).
    static func handMadeToken(header: String, payload: String, key: SigningKeyPair) -> String {
        let signingInput = base64url(header) + "." + base64url(payload)
        let signature = sign(Array(signingInput.utf8), seed: key)
        return signingInput + "." + base64url(signature)
    }
}
