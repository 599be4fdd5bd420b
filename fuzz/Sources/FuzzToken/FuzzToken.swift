import CFuzzerDriver
import Crypto
import Foundation
import FuzzSupport
import IsthmusKubeTypes
import IsthmusTrust

/// SwiftPM links executables with `main` renamed to `<Module>_main`.
@_cdecl("FuzzToken_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}

private let seed = [UInt8](repeating: 7, count: 32)
private let signer = try! Curve25519.Signing.PrivateKey(rawRepresentation: seed)
private let peerUUID = "cluster-a"
private let localUUID = "cluster-b"
private let now: Int64 = 1_800_000_000
private let verifier: TokenVerifier = {
    let key = try! SigningKeyPair(seed: seed)
    let peer = try! TrustedPeer(clusterUUID: peerUUID, keys: [key.publicKey],
                                rootCA: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    return TokenVerifier(localClusterUUID: localUUID, peers: try! TrustedPeers([peer]))
}()
private let cache = VerifiedTokenCache(capacity: 64, stripes: 4)

private func base64url(_ bytes: [UInt8]) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// The first byte picks what the rest is:
/// 0: a raw bearer token; 1: header JSON, a 0x0A byte, claims JSON, signed here
/// with the trusted peer's key, so the claims reader is reached past the
/// signature; 2: a trusted peers file, also read by both JSON modes;
/// 3: PEM text with public keys.
func fuzzOne(_ input: [UInt8]) {
    guard let mode = input.first else { return }
    let rest = Array(input.dropFirst())
    switch mode % 4 {
    case 0:
        check(String(decoding: rest, as: UTF8.self))
    case 1:
        let parts = rest.split(separator: 0x0A, maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return }
        let signingInput = base64url(Array(parts[0])) + "." + base64url(Array(parts[1]))
        guard let signature = try? signer.signature(for: Array(signingInput.utf8)) else { return }
        check(signingInput + "." + base64url(Array(signature)))
    case 2:
        _ = try? TrustedPeers(json: rest)
        checkModesAgree(rest)
    default:
        _ = try? PeerPublicKey.parseAll(pem: String(decoding: rest, as: UTF8.self))
    }
}

/// Whatever the token, an accepted one satisfies every rule of the verifier,
/// a refusal never quotes it, and the cache agrees with a fresh verification.
private func check(_ raw: String) {
    let token = BearerToken(raw)
    let fresh: Result<VerifiedToken, TokenFailure>
    do { fresh = .success(try verifier.verify(token, scope: .api, now: now)) } catch { fresh = .failure(error) }
    let cached: Result<VerifiedToken, TokenFailure>
    do { cached = .success(try verifier.verify(token, scope: .api, now: now, cache: cache)) } catch { cached = .failure(error) }
    precondition(fresh == cached, "the cache disagrees with a fresh verification")
    switch fresh {
    case .success(let verified):
        precondition(verified.peer == peerUUID && verified.claims.subject == peerUUID)
        precondition(verified.claims.audience == localUUID)
        precondition(verified.claims.scope == .api)
        precondition(verified.claims.expiresAt + 60 > now)
        precondition((verified.claims.notBefore ?? now) - 60 <= now)
        precondition(verified.claims.issuer == TokenClaims.deckhouseIssuer, "a token of another issuer was accepted")
    case .failure(let failure):
        // Bytes, not String.contains: Foundation's search stops at a NUL, so
        // `")" + 93 NULs` "matched" the `)` of a correct refusal.
        if raw.utf8.count >= 16 {
            precondition(!containsBytes(Array(failure.description.utf8), Array(raw.utf8)), "a refusal quotes the token")
        }
    }
}

/// The strict mode only refuses more: whatever it accepts, the Go-compatible
/// mode reads to the same value.
private func checkModesAgree(_ bytes: [UInt8]) {
    guard let strict = try? JSON(parsing: bytes, options: .strict) else { return }
    precondition((try? JSON(parsing: bytes, options: .goCompatible)) == strict, "the JSON modes disagree")
}
